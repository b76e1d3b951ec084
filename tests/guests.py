"""Test-only componentize-py guests, built once and cached by what they are made of.

A guest lives in ``tests/<name>_component`` (its ``wit/`` and ``app/``). The
built file is named by a hash of its sources, the WIT it is built against and
the componentize-py version, so only changes rebuild; older builds are removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _digest(source: Path, wit_deps: Sequence[Path]) -> str:
    try:
        tool_version = version("componentize-py")
    except PackageNotFoundError:
        tool_version = "unknown"
    digest = hashlib.sha256(tool_version.encode())
    paths = [*source.rglob("*.wit"), *source.rglob("*.py")]
    paths += [wit for deps in wit_deps for wit in deps.glob("*.wit")]
    for path in sorted(paths):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _componentize_py() -> str:
    beside = Path(sys.executable).parent / "componentize-py"
    found = str(beside) if beside.exists() else shutil.which("componentize-py")
    if found is None:
        pytest.skip("componentize-py is not installed (pip install -e '.[build]')")
    return found


def build_guest(name: str, world: str, wit_deps: Sequence[Path] = (), app: str = "app") -> Path:
    """``tests/<name>_component`` built for ``world`` into ``build/<name>-test/``.

    ``app``: the directory of the guest's ``app.py``, for a component directory
    whose WIT has several worlds (each built from its own app).
    """
    source = REPO / "tests" / f"{name}_component"
    stem = name if app == "app" else f"{name}-{app}"
    build = REPO / "build" / f"{stem}-test"
    out = build / f"{stem}-{_digest(source, wit_deps)}.wasm"
    if out.exists():
        return out
    build.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build) as tmp:
        built = Path(tmp) / f"{stem}.wasm"
        command = [_componentize_py()]
        for deps in wit_deps:
            command += ["-d", str(deps)]
        command += ["-d", str(source / "wit"), "-w", world]
        command += ["componentize", "-p", str(source / app), "app", "-o", str(built)]
        subprocess.run(command, check=True, capture_output=True, cwd=tmp)
        # Same directory, so the rename is atomic: a parallel run never sees half a file.
        os.replace(built, out)
    for stale in build.glob(f"{stem}-*.wasm"):
        if stale != out:
            stale.unlink(missing_ok=True)
    return out
