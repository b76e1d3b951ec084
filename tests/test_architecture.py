"""The layers in docs/architecture.md hold: checked by import-linter on every test run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_importing_the_host_daemon_loads_neither_click_nor_redis() -> None:
    """The CLI is a thin top layer and a provider's backend lives in its own process: a
    host imports neither (providers.launch, not the providers.run entry point)."""
    code = (
        "import host.daemon, sys; "
        "assert 'click' not in sys.modules and 'redis' not in sys.modules, "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'redis'))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_only_the_runtime_imports_wasmtime() -> None:
    """Every module outside host/runtime, new ones included (the import-linter
    contract lists modules by name; this check needs no list)."""
    import ast

    offenders = []
    for package in ("cli", "host", "lattice", "providers", "controller", "deploy", "catalog"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path.is_relative_to(REPO / "host" / "runtime"):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(name.split(".")[0] == "wasmtime" for name in names):
                    offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
