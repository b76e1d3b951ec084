"""Build the example components into build/components/NAME.wasm.

    python examples/build_components.py [--out DIR] [--only NAME ...]

Python apps are built with componentize-py, WAT modules with wasm-tools (parse, then
component embed + component new). A component is skipped when its stamp file holds
the sha256 of its inputs (sources, WIT files, tool versions, this script) and its
output exists.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "components"
WAT = EXAMPLES / "wat"
WIT = ROOT / "providers" / "wit"
PROBE_WIT = WAT / "probe-wit"
DEFAULT_OUT = ROOT / "build" / "components"


class BuildError(Exception):
    pass


@dataclass(frozen=True)
class Spec:
    name: str
    world: str
    # A Python app directory (componentize-py) or a .wat file (wasm-tools).
    source: Path

    @property
    def is_python(self) -> bool:
        return self.source.is_dir()

    @property
    def wit_files(self) -> list[Path]:
        if self.world == "probe":
            return [*PROBE_WIT.glob("*.wit"), WIT / "deps" / "logging" / "logging.wit"]
        return sorted(WIT.rglob("*.wit"))

    @property
    def source_files(self) -> list[Path]:
        if self.is_python:
            return sorted(self.source.rglob("*.py"))
        return [self.source]


SPECS = {
    s.name: s
    for s in [
        Spec("hello", "http-hello", EXAMPLES / "hello"),
        Spec("counter", "http-keyvalue", EXAMPLES / "counter"),
        # Probes the WASI sandbox (env, argv, files, stdin, sockets); tests/test_sandbox.py.
        Spec("inspect", "http-hello", EXAMPLES / "inspect"),
        Spec("front", "http-front", EXAMPLES / "front"),
        Spec("greeter", "greeter", EXAMPLES / "greeter"),
        # "-wat" because the Python hello already owns the name.
        Spec("hello-wat", "http-bare", WAT / "hello.wat"),
        Spec("echo", "http-bare", WAT / "echo.wat"),
        Spec("trap", "http-bare", WAT / "trap.wat"),
        Spec("loop", "http-bare", WAT / "loop.wat"),
        Spec("memhog", "http-bare", WAT / "memhog.wat"),
        Spec("probe", "probe", WAT / "probe.wat"),
    ]
}


@cache
def tool(name: str) -> str:
    """Find a tool next to the running interpreter (the venv) first, then on PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise BuildError(f"{name} not found next to {sys.executable} or on PATH")
    return found


@cache
def tool_version(name: str) -> str:
    return run([tool(name), "--version"]).strip()


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()
        raise BuildError(f"`{' '.join(cmd)}` exited with {proc.returncode}:\n{output}")
    return proc.stdout


def input_digest(spec: Spec) -> str:
    h = hashlib.sha256()
    h.update(f"{spec.name}\0{spec.world}\0".encode())
    h.update(tool_version("componentize-py" if spec.is_python else "wasm-tools").encode())
    # The script itself is an input: it holds the build commands.
    for path in [Path(__file__).resolve(), *spec.wit_files, *spec.source_files]:
        h.update(f"\0{path.relative_to(ROOT)}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def compile_component(spec: Spec, output: Path, tmp: Path) -> None:
    if spec.is_python:
        run([tool("componentize-py"), "-q", "-d", str(WIT), "-w", spec.world,
             "componentize", "-p", str(spec.source), "app", "-o", str(output)])  # fmt: skip
        return
    wit_dir = WIT
    if spec.world == "probe":
        # The probe WIT lives apart from providers/wit; give it a deps/ copy of logging.
        wit_dir = tmp / "probe-wit"
        shutil.copytree(PROBE_WIT, wit_dir)
        (wit_dir / "deps" / "logging").mkdir(parents=True)
        shutil.copy(WIT / "deps" / "logging" / "logging.wit", wit_dir / "deps" / "logging")
    wasm_tools = tool("wasm-tools")
    core, embedded = tmp / "core.wasm", tmp / "embedded.wasm"
    run([wasm_tools, "parse", str(spec.source), "-o", str(core)])
    run([wasm_tools, "component", "embed", str(wit_dir), "--world", spec.world,
         str(core), "-o", str(embedded)])  # fmt: skip
    run([wasm_tools, "component", "new", str(embedded), "-o", str(output)])


def build_one(spec: Spec, out_dir: Path) -> tuple[Path, str]:
    """Build one component unless its stamp is current; returns its path and a status."""
    output = out_dir / f"{spec.name}.wasm"
    stamp = out_dir / f"{spec.name}.stamp"
    digest = input_digest(spec)
    if output.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return output, "up to date"
    stamp.unlink(missing_ok=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"build-{spec.name}-") as tmp:
        # Build into the temp dir and move, so a failed build never leaves a partial output.
        staged = Path(tmp) / "out.wasm"
        compile_component(spec, staged, Path(tmp))
        shutil.move(staged, output)
    stamp.write_text(digest + "\n")
    return output, f"built in {time.monotonic() - start:.1f} s"


def build_all(
    out_dir: Path,
    only: list[str] | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Path]:
    """Build the named components (default: all) into out_dir; returns name -> .wasm path.

    Raises BuildError when a name is unknown, a tool is missing or a build fails.
    """
    names = list(SPECS) if only is None else only
    unknown = sorted(set(names) - set(SPECS))
    if unknown:
        raise BuildError(f"unknown component(s) {unknown}; known: {sorted(SPECS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Builds are independent subprocesses; the componentize-py ones take seconds each.
    with ThreadPoolExecutor() as pool:
        futures = {name: pool.submit(build_one, SPECS[name], out_dir) for name in names}
        built: dict[str, Path] = {}
        errors: list[str] = []
        for name, future in futures.items():
            try:
                built[name], status = future.result()
            except BuildError as e:
                errors.append(f"{name}: {e}")
                status = "FAILED"
            if log is not None:
                log(f"{name:<10} {status}")
    if errors:
        raise BuildError("build failed:\n" + "\n".join(errors))
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(SPECS))
    args = parser.parse_args(argv)
    try:
        build_all(args.out.resolve(), args.only)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
