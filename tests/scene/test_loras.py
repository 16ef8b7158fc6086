"""loras.yaml schema + loading, header-only file checks, and the `loras` command."""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

import pytest
import yaml

from ai_wallpaper import cli
from ai_wallpaper.config.settings import Settings, settings_from_dict
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.paths import SHIPPED_CONFIG_DIR, Paths
from ai_wallpaper.scene import lora_files
from ai_wallpaper.scene import lora_library as loras
from tests import lora_factory as lf


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """check_file hashes into the user's cache dir by default: never the real one from a test."""
    monkeypatch.setenv("AI_WALLPAPER_CACHE_DIR", str(tmp_path / "default-cache"))


def _settings(directory: Path | None = None, file: Path | None = None) -> Settings:
    section: dict[str, object] = {}
    if directory is not None:
        section["directory"] = str(directory)
    if file is not None:
        section["file"] = str(file)
    return settings_from_dict({"loras": section})


def _library(tmp_path: Path, paths: Paths, text: str, directory: Path | None = None) -> loras.LoraLibrary:
    f = tmp_path / "loras.yaml"
    f.write_text(text, encoding="utf-8")
    return loras.load_library(paths, _settings(directory or tmp_path / "lib", f), tmp_path / "settings.yaml")


# --- schema ---------------------------------------------------------------------------------------


def test_shipped_library_validates_and_its_entries_are_disabled(paths: Paths) -> None:
    library = loras.load_library(paths, Settings(), paths.settings_file)
    assert library.file == SHIPPED_CONFIG_DIR / "loras.yaml"
    assert library.directory == paths.lora_dir
    assert len(library.loras) >= 3
    assert all(not spec.enabled for spec in library.loras.values())
    assert all(library.status(key).kind == "missing" for key in library.loras)
    assert library.rules.max_loras >= 1 and library.rules.weight_sum_max > 0


def test_every_problem_is_reported_at_once_with_lines(tmp_path: Path, paths: Paths) -> None:
    text = """\
stacking_rules:
  max_loras: 99
  type_limits: {style: -1}
loras:
  good:
    file: good.safetensors
  reversed:
    file: r.safetensors
    weight_range: [0.9, 0.2]
  sd15:
    file: s.safetensors
    base: sd15
  typo:
    file: t.safetensors
    trigers: [x]
  pickled:
    file: old.ckpt
  good:
    file: again.safetensors
  bad key:
    file: b.safetensors
"""
    with pytest.raises(ConfigError) as err:
        _library(tmp_path, paths, text)
    problems = "\n".join(err.value.problems)
    expected = [
        ("loras.yaml:2: stacking_rules.max_loras", "must be <= 8"),
        ("loras.yaml:9: loras.reversed.weight_range", "low 0.9 is above high 0.2"),
        ("loras.yaml:12: loras.sd15.base", "expected one of 'sdxl'"),
        ("loras.yaml:15: loras.typo.trigers", "did you mean 'trigger_words'"),
        ("loras.yaml:17: loras.pickled.file", "must be a .safetensors file"),
        ("loras.yaml:18: loras.good", "duplicate key 'good': first on line 5, again on line 18"),
        ("loras.bad key", "no spaces"),
    ]
    for where, what in expected:
        assert any(where in p and what in p for p in err.value.problems), (where, what, problems)


def test_two_keys_for_one_file_are_rejected(tmp_path: Path, paths: Paths) -> None:
    text = f"loras:\n  a: {{file: x.safetensors}}\n  b: {{file: {tmp_path / 'lib' / 'x.safetensors'}}}\n"
    with pytest.raises(ConfigError, match=r"loras\.b\.file: same file as LoRA 'a'"):
        _library(tmp_path, paths, text)


def test_files_resolve_against_the_library_dir_and_need_not_exist(tmp_path: Path, paths: Paths) -> None:
    settings_file = tmp_path / "conf" / "settings.yaml"
    f = tmp_path / "conf" / "loras.yaml"
    f.parent.mkdir()
    f.write_text(f"loras:\n  a: {{file: a.safetensors}}\n  b: {{file: {tmp_path / 'abs.safetensors'}}}\n")
    settings = settings_from_dict({"loras": {"directory": "my-loras", "file": "loras.yaml"}})
    library = loras.load_library(paths, settings, settings_file)
    assert library.file == f
    assert library.directory == tmp_path / "conf" / "my-loras"
    assert library.loras["a"].path == (tmp_path / "conf" / "my-loras" / "a.safetensors").resolve()
    assert library.loras["b"].path == (tmp_path / "abs.safetensors").resolve()
    assert library.status("a").kind == "missing"


def test_default_directory_is_the_data_dir_and_user_file_wins(paths: Paths) -> None:
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "loras.yaml").write_text("loras:\n  mine: {file: mine.safetensors, type: detail}\n")
    library = loras.load_library(paths, Settings(), paths.settings_file)
    assert list(library.loras) == ["mine"]
    assert library.loras["mine"].path == (paths.lora_dir / "mine.safetensors").resolve()


def test_explicit_missing_library_file_is_an_error(tmp_path: Path, paths: Paths) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        loras.load_library(paths, _settings(file=tmp_path / "nope.yaml"), tmp_path / "settings.yaml")


# --- file checks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("keys", "kind"), [
    (lf.sdxl_diffusers_keys, "sdxl-lora"),
    (lf.sdxl_kohya_keys, "sdxl-lora"),
    (lf.sd15_kohya_keys, "sd15-lora"),
    (lf.sd15_diffusers_keys, "sd15-lora"),
    (lf.loha_keys, "loha"),
    (lf.lokr_keys, "lokr"),
    (lf.plain_keys, "not-lora"),
    (lf.checkpoint_keys, "not-lora"),
])
def test_header_classification(tmp_path: Path, keys: object, kind: str) -> None:
    path = lf.write_keys(tmp_path / "f.safetensors", keys())  # type: ignore[operator]
    status = loras.check_file(path)
    assert status.kind == kind, status
    assert status.ok == (kind == "sdxl-lora")
    assert status.message
    if status.ok:
        assert status.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert "unet" in status.targets
    else:
        assert status.sha256 == ""


def test_messages_say_what_is_wrong(tmp_path: Path) -> None:
    assert "LoHa" in loras.check_file(lf.write_keys(tmp_path / "h.safetensors", lf.loha_keys())).message
    assert "LoKr" in loras.check_file(lf.write_keys(tmp_path / "k.safetensors", lf.lokr_keys())).message
    assert "SD1" in loras.check_file(lf.write_keys(tmp_path / "s.safetensors", lf.sd15_kohya_keys())).message
    full = loras.check_file(lf.write_keys(tmp_path / "c.safetensors", lf.checkpoint_keys()))
    assert "full Stable Diffusion checkpoint" in full.message
    kohya = loras.check_file(lf.write_keys(tmp_path / "x.safetensors", lf.sdxl_kohya_keys()))
    assert kohya.targets == ("unet", "text_encoder", "text_encoder_2")


def test_broken_files_are_unreadable_or_missing(tmp_path: Path) -> None:
    good = lf.write_keys(tmp_path / "good.safetensors", lf.sdxl_diffusers_keys())
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[:-100])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    bad_json = tmp_path / "json.safetensors"
    bad_json.write_bytes(struct.pack("<Q", 6) + b"{nope}")
    deep = tmp_path / "deep.safetensors"  # a header nested past the JSON parser's recursion
    deep.write_bytes(struct.pack("<Q", 50_000) + b"[" * 50_000)
    cases = {truncated: "truncated", garbage: "bad header length", empty: "too short",
             bad_json: "not valid JSON", deep: "not valid JSON"}
    for path, words in cases.items():
        status = loras.check_file(path)
        assert (status.ok, status.kind) == (False, "unreadable"), path
        assert words in status.message, status.message
    assert loras.check_file(tmp_path / "absent.safetensors").kind == "missing"
    assert loras.check_file(tmp_path).kind == "unreadable"


def test_check_file_reads_only_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An SD1.5 file is rejected from its header alone: the body is never read (no hashing).
    path = lf.write_keys(tmp_path / "s.safetensors", {**lf.sd15_kohya_keys(), "big": (256, 1024)})
    monkeypatch.setattr(lora_files, "file_sha256", lambda *_a, **_k: pytest.fail("hashed a rejected file"))
    assert loras.check_file(path).kind == "sd15-lora"


def test_sha256_is_cached_on_disk_and_invalidated_by_changes(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = lf.write_keys(tmp_path / "a.safetensors", lf.sdxl_diffusers_keys(), seed=1)
    cache = tmp_path / "cache"
    first = loras.check_file(path, cache_dir=cache)
    # the one hash cache, shared with model fingerprints
    assert first.sha256 in (cache / "hashes.json").read_text()
    with monkeypatch.context() as m:
        m.setattr(hashlib, "file_digest", lambda *_a, **_k: pytest.fail("re-read an unchanged file"))
        assert loras.check_file(path, cache_dir=cache).sha256 == first.sha256
    lf.write_keys(path, lf.sdxl_diffusers_keys(), seed=2)  # new content, new mtime
    again = loras.check_file(path, cache_dir=cache)
    assert again.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() != first.sha256


@pytest.mark.parametrize("content", [
    b"\xff\xfe not json", b"[1, 2, 3]", b'{"KEY": "not an entry"}', b'{"KEY": {"size": 1}}',
    b'{"KEY": {"size": SIZE, "mtime_ns": MTIME, "sha256": 7}}', b'{"KEY": {"size": SIZE, "mtime_ns": MTIME}}',
    b'{"KEY": {"size": SIZE, "mtime_ns": MTIME, "sha256": ""}}', b'{"KEY": {"size": SIZE, "sha256": "0"}}',
])
def test_a_corrupt_hash_cache_is_ignored_and_rewritten(tmp_path: Path, content: bytes) -> None:
    path = lf.write_keys(tmp_path / "a.safetensors", lf.sdxl_diffusers_keys())
    cache = tmp_path / "cache"
    cache.mkdir()
    st = path.stat()
    key = json.dumps(str(path.resolve()))[1:-1].encode()
    (cache / "hashes.json").write_bytes(content.replace(b"KEY", key).replace(b"SIZE", str(st.st_size).encode())
                                        .replace(b"MTIME", str(st.st_mtime_ns).encode()))
    status = loras.check_file(path, cache_dir=cache)
    assert status.ok and status.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads((cache / "hashes.json").read_text())[str(path.resolve())]["sha256"] == status.sha256


def test_a_cached_hash_is_never_trusted_for_a_changed_file(tmp_path: Path) -> None:
    path = lf.write_keys(tmp_path / "a.safetensors", lf.sdxl_diffusers_keys(), seed=1)
    cache = tmp_path / "cache"
    cache.mkdir()
    st = path.stat()
    stale = {"size": st.st_size, "mtime_ns": st.st_mtime_ns - 1, "sha256": "f" * 64}  # an older copy's hash
    (cache / "hashes.json").write_text(json.dumps({str(path.resolve()): stale}))
    assert loras.check_file(path, cache_dir=cache).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --- the command -----------------------------------------------------------------------------------


def _cli_library(paths: Paths) -> None:
    lib = paths.lora_dir
    lf.write_keys(lib / "good.safetensors", lf.sdxl_kohya_keys())
    lf.write_keys(lib / "old.safetensors", lf.sd15_kohya_keys())
    lf.write_keys(lib / "loha.safetensors", lf.loha_keys())
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    entries = {"good": {"file": "good.safetensors", "type": "detail", "weight_range": [0.2, 0.5]},
               "old": {"file": "old.safetensors"},
               "loha": {"file": "loha.safetensors"},
               "gone": {"file": "gone.safetensors"},
               "later": {"file": "later.safetensors", "enabled": False}}
    (paths.config_dir / "loras.yaml").write_text(yaml.safe_dump({"loras": entries}))


def test_loras_list_shows_each_file_status(paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    _cli_library(paths)
    assert cli.main(["loras", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line and line.split()[0] in
            ("good", "old", "loha", "gone", "later")}
    assert "detail" in rows["good"] and "0.2..0.5" in rows["good"] and " ok " in rows["good"]
    assert "sd15-lora" in rows["old"]
    assert "loha" in rows["loha"].split()[3]
    assert "missing" in rows["gone"]
    assert "disabled (missing)" in rows["later"]


def test_loras_validate_lists_every_problem_and_exits_1(paths: Paths,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _cli_library(paths)
    assert cli.main(["loras", "validate"]) == 1
    out = capsys.readouterr().out
    assert "3 problem(s)" in out
    for key, words in (("old", "SD1"), ("loha", "LoHa"), ("gone", "file not found")):
        assert any(f"PROBLEM   {key}" in line and words in line for line in out.splitlines()), (key, out)
    assert "disabled  later" in out and "ok        good" in out


def test_loras_validate_passes_on_the_shipped_library(paths: Paths,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["loras", "validate"]) == 0
    assert "all enabled LoRAs are usable" in capsys.readouterr().out


def test_loras_validate_reports_schema_problems(paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "loras.yaml").write_text("loras:\n  a: {file: a.safetensors, weight_range: [1]}\n"
                                                 "  b: {file: b.safetensors, chance: 2}\n")
    assert cli.main(["loras", "validate"]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "loras.a.weight_range" in out and "loras.b.chance" in out


def test_loras_check_command(tmp_path: Path, paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    good = lf.write_keys(tmp_path / "g.safetensors", lf.sdxl_kohya_keys())
    bad = lf.write_keys(tmp_path / "k.safetensors", lf.lokr_keys())
    assert cli.main(["loras", "check", str(good)]) == 0
    assert cli.main(["loras", "check", str(good), str(bad)]) == 1
    assert "lokr" in capsys.readouterr().out


def test_library_and_checks_do_not_import_torch(tmp_path: Path) -> None:
    import subprocess

    path = lf.write_keys(tmp_path / "g.safetensors", lf.sdxl_kohya_keys())
    code = ("import sys; from pathlib import Path\n"
            "from ai_wallpaper.scene import lora_library as loras, lora_selector, prompts\n"
            f"assert loras.check_file(Path({str(path)!r}), cache_dir=Path({str(tmp_path / 'cache')!r})).ok\n"
            "assert not {'torch', 'transformers', 'diffusers'} & set(sys.modules), sys.modules.keys()")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
