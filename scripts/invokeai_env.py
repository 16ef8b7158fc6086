"""Build, once, a virtual environment with a pinned InvokeAI that shares the project venv's torch.

    python scripts/invokeai_env.py --dest FOLDER [--project-venv PATH]

FOLDER/invokeai-<invokeai>-torch-<torch>-py<python>/ gets venv/ (InvokeAI and its other dependencies from
the package index) and shared/ (symlinks to the project venv's torch, torchvision, triton and the
nvidia/cuda wheels, put on the venv's path by a .pth file). pip then sees the pinned torch as installed
and skips its ~5 GB. shared/ is rebuilt on every call, so it follows the project venv; a project venv
with other torch versions is refused rather than mixed in. Prints the venv path. The tests start
InvokeAI from it (tests/invokeai_server.py); `make test-assets` runs this.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INVOKEAI_VERSION = "6.14.2"
TORCH_VERSION = "2.14.1"
TORCHVISION_VERSION = "0.29.1"
PYTHON_VERSION = "3.11"
FOLDER = f"invokeai-{INVOKEAI_VERSION}-torch-{TORCH_VERSION}-py{PYTHON_VERSION}"
# Distributions whose files are shared from the project venv rather than installed twice.
SHARED_NAMES = ("torch", "torchvision", "triton")
SHARED_PREFIXES = ("nvidia-", "nvidia_", "cuda-", "cuda_")
MARKER = ".made-by-invokeai_env"  # written first: only a folder carrying it is ever deleted
STAMP = ".installed"  # written last: its absence means the build did not finish
PTH = "shared-torch.pth"


def env_folder(dest: Path) -> Path:
    return dest / FOLDER


def venv_python(folder: Path) -> Path:
    return folder / "venv" / "bin" / "python"


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{PYTHON_VERSION}" / "site-packages"


def _is_shared(name: str) -> bool:
    name = name.lower()
    return name in SHARED_NAMES or name.startswith(SHARED_PREFIXES)


def shared_entries(project_site: Path) -> list[str]:
    """Top-level names in `project_site` that belong to the shared distributions (from their RECORD files)."""
    versions: dict[str, str] = {}
    entries: set[str] = set()
    for dist in importlib.metadata.distributions(path=[str(project_site)]):
        name = dist.metadata["Name"] or ""
        if not _is_shared(name):
            continue
        versions[name.lower()] = dist.version
        for file in dist.files or []:
            top = file.parts[0]
            if top not in ("..", "__pycache__") and (project_site / top).exists():
                entries.add(top)
    _check_versions(project_site, versions)
    return sorted(entries)


def _check_versions(project_site: Path, versions: dict[str, str]) -> None:
    wanted = {"torch": TORCH_VERSION, "torchvision": TORCHVISION_VERSION}
    for name, pinned in wanted.items():
        found = versions.get(name)
        # A local label (2.14.1+cu130) is the same release to pip's `==2.14.1`.
        if found is None or found.split("+")[0] != pinned:
            raise SystemExit(f"{project_site} has {name} {found or 'not installed'}, but {FOLDER} is pinned to "
                             f"{name}=={pinned}: bump the pins in {Path(__file__).name} with the project's torch")


def link_shared(folder: Path, project_site: Path) -> Path:
    """(Re)make folder/shared as symlinks into `project_site`; an unchanged set of links is kept as it is,
    so a server already starting from it is not disturbed."""
    shared = folder / "shared"
    wanted = {name: str(project_site / name) for name in shared_entries(project_site)}
    if shared.is_dir() and _links(shared) == wanted:
        return shared
    tmp = Path(tempfile.mkdtemp(prefix=".shared.", dir=folder))
    tmp.chmod(0o755)  # mkdtemp makes it private; it is read like any other folder of the venv
    for name, target in wanted.items():
        (tmp / name).symlink_to(target)
    if shared.exists():
        old = Path(tempfile.mkdtemp(prefix=".shared-old.", dir=folder))
        os.replace(shared, old / "shared")
        os.replace(tmp, shared)
        shutil.rmtree(old)  # only symlinks: rmtree never follows them
    else:
        os.replace(tmp, shared)
    return shared


def _links(folder: Path) -> dict[str, str]:
    return {entry.name: os.readlink(entry) for entry in folder.iterdir() if entry.is_symlink()}


def _build(folder: Path, project_site: Path) -> None:
    if folder.exists():
        if not (folder / MARKER).is_file():
            raise SystemExit(f"{folder} exists but was not made by {Path(__file__).name}; move it away")
        print(f"removing the unfinished build in {folder}", file=sys.stderr)
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by scripts/invokeai_env.py; deleted and rebuilt when unfinished\n",
                                 encoding="utf-8")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    shared = link_shared(folder, project_site)
    (site_packages(venv) / PTH).write_text(f"{shared}\n", encoding="utf-8")
    started = time.monotonic()
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "--no-input",
                    f"invokeai=={INVOKEAI_VERSION}", f"torch=={TORCH_VERSION}",
                    f"torchvision=={TORCHVISION_VERSION}"], check=True)
    print(f"installed invokeai=={INVOKEAI_VERSION} in {time.monotonic() - started:.0f} s", file=sys.stderr)


def check(folder: Path) -> None:
    """Cheap sanity check (no torch import): InvokeAI is the pinned one and torch comes from shared/."""
    code = ("import importlib.metadata as m, importlib.util as u, invokeai\n"
            "print(m.version('invokeai'), m.version('torch'), u.find_spec('torch').origin)")
    result = subprocess.run([str(venv_python(folder)), "-c", code], capture_output=True, text=True)
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) != 3:
        raise SystemExit(f"{folder}: InvokeAI does not import:\n{result.stderr.strip()}")
    invokeai, torch, origin = fields
    if invokeai != INVOKEAI_VERSION or torch.split("+")[0] != TORCH_VERSION:
        raise SystemExit(f"{folder}: has invokeai {invokeai} and torch {torch}, not the pinned ones")
    if not Path(origin).is_relative_to(folder / "shared"):
        raise SystemExit(f"{folder}: torch is imported from {origin}, not from the shared project torch")


def ensure(dest: Path, project_venv: Path) -> Path:
    if sys.version_info[:2] != tuple(int(p) for p in PYTHON_VERSION.split(".")):
        raise SystemExit(f"run this with Python {PYTHON_VERSION} (the venv is made from this interpreter)")
    project_site = site_packages(project_venv)
    if not project_site.is_dir():
        raise SystemExit(f"{project_venv} is not a Python {PYTHON_VERSION} venv (no {project_site})")
    folder = env_folder(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # Two `make test` runs at once must not build (or delete) the same folder together.
    with open(dest / f".{FOLDER}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / STAMP).is_file():
            _build(folder, project_site)
            check(folder)
            (folder / STAMP).write_text(f"invokeai=={INVOKEAI_VERSION} torch=={TORCH_VERSION}\n", encoding="utf-8")
        else:
            link_shared(folder, project_site)
            check(folder)
    return folder / "venv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--project-venv", type=Path, default=Path(sys.prefix),
                        help="the venv whose torch is shared (default: the one running this script)")
    args = parser.parse_args()
    print(ensure(args.dest.absolute(), args.project_venv.absolute()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
