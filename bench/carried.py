"""Run the benchmarks on a machine whose Python has torch but not our other packages (the lent GPU
machine: its own Python 3.12 and torch, no diffusers or spandrel, no network).

`scripts/gpu_wheels.py` downloads the pinned wheels of everything but torch for CPython 3.12 into
`.gpu-wheels/` (git-ignored, ~30 MB; the device tool carries it). `activate()` unpacks them once into a
temporary folder and appends it to `sys.path`, after the machine's own site-packages, so the machine's
numpy or pillow win where it has them and our wheels only fill the gaps. No pip, nothing installed.
"""

from __future__ import annotations

import sys
import tempfile
import zipfile
from pathlib import Path

FOLDER = Path(__file__).resolve().parent.parent / ".gpu-wheels"


def activate(folder: Path = FOLDER) -> Path | None:
    """Make the carried wheels importable; None when there are none (a normal venv needs none)."""
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        return None
    site = Path(tempfile.mkdtemp(prefix="aiw-carried-"))
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                # A wheel is data: nothing may land outside the folder it is unpacked into.
                target = (site / member).resolve()
                if not target.is_relative_to(site.resolve()):
                    raise SystemExit(f"{wheel.name}: refusing member {member!r} outside the unpack folder")
            archive.extractall(site)
    sys.path.append(str(site))
    return site
