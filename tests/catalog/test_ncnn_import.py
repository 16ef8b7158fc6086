"""Reading Real-ESRGAN from ncnn files: a round trip through the ncnn format on a real RRDBNet, and every
way a damaged or hostile pair of files is refused (a clear ModelError, never a crash or a huge read)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
import torch

from ai_wallpaper.catalog.ncnn_import import FP16_TAG, read_convolutions, rrdbnet_state_dict
from ai_wallpaper.core.errors import ModelError


def to_ncnn(state: dict[str, torch.Tensor]) -> tuple[str, bytes]:
    """Write a basicsr RRDBNet state dict as ncnn files, convolutions in RRDBNet's order."""
    names = [k.removesuffix(".weight") for k in state if k.endswith(".weight")]
    lines, data = ["7767517", f"{len(names) + 1} {len(names) + 1}", "Input in 0 1 data"], bytearray()
    for i, name in enumerate(names):
        w, b = state[f"{name}.weight"].numpy(), state[f"{name}.bias"].numpy()
        lines.append(f"Convolution {name} 1 1 b{i} b{i + 1} 0={w.shape[0]} 1={w.shape[2]} 4=1 5=1 6={w.size} "
                     "9=2 -23310=1,2.000000e-01")
        data += struct.pack("<I", FP16_TAG) + w.astype("<f2").tobytes()
        data += b"\0" * (-len(data) % 4) + b.astype("<f4").tobytes()
    return "\n".join(lines) + "\n", bytes(data)


@pytest.fixture(scope="module")
def rrdb_state() -> dict[str, torch.Tensor]:
    """A small random RRDBNet (2 blocks, 8 features, growth 32 as spandrel expects), basicsr names, run order."""
    g = torch.Generator().manual_seed(0)
    feat, grow = 8, 32
    shapes = {"conv_first": (feat, 3)}
    for b in range(2):
        for r in (1, 2, 3):
            for c in range(1, 6):
                shapes[f"body.{b}.rdb{r}.conv{c}"] = (feat if c == 5 else grow, feat + (c - 1) * grow)
    shapes |= {"conv_body": (feat, feat), "conv_up1": (feat, feat), "conv_up2": (feat, feat),
               "conv_hr": (feat, feat), "conv_last": (3, feat)}
    state: dict[str, torch.Tensor] = {}
    for name, (out, inn) in shapes.items():
        state[f"{name}.weight"] = torch.randn(out, inn, 3, 3, generator=g) * 0.1
        state[f"{name}.bias"] = torch.randn(out, generator=g) * 0.1
    return state


def test_round_trip_through_ncnn_gives_the_same_model(rrdb_state: dict[str, torch.Tensor]) -> None:
    from spandrel import ModelLoader

    param, data = to_ncnn(rrdb_state)
    state = rrdbnet_state_dict(read_convolutions(param, data))
    assert list(state) == list(rrdb_state)
    for key, value in rrdb_state.items():
        expected = value.numpy().astype(np.float16 if key.endswith(".weight") else np.float32)
        assert np.array_equal(state[key], expected), key
    model = ModelLoader().load_from_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    assert model.architecture.name == "ESRGAN" and model.scale == 4


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p, d: ("not ncnn\n" + p, d), "not an ncnn .param file"),
    (lambda p, d: (p, d[:-10]), "too short"),
    (lambda p, d: (p, d + b"\0" * 8), "8 bytes the .param does not account for"),
    (lambda p, d: (p, struct.pack("<I", 0) + d[4:]), "stored as tag 0x0"),
    (lambda p, d: (p.replace("6=", "6=1", 1), d), "do not add up|too short"),
    (lambda p, d: (p.replace(" 0=", " 0=-", 1), d), "do not add up"),
    (lambda p, d: (p, b""), "ends before convolution"),
])
def test_damaged_files_are_refused(rrdb_state: dict[str, torch.Tensor], damage: Any, message: str) -> None:
    param, data = damage(*to_ncnn(rrdb_state))
    with pytest.raises(ModelError, match=message):
        rrdbnet_state_dict(read_convolutions(param, data))


def test_a_network_that_is_not_an_rrdbnet_is_refused(rrdb_state: dict[str, torch.Tensor]) -> None:
    param, data = to_ncnn({k: v for k, v in rrdb_state.items() if not k.startswith("conv_last")})
    with pytest.raises(ModelError, match="is not an RRDBNet"):
        rrdbnet_state_dict(read_convolutions(param, data))
