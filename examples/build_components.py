"""Build the example components into build/components/NAME.wasm.

    python examples/build_components.py [--out DIR] [--only NAME ...]

Python apps are built with componentize-py, WAT modules with wasm-tools (parse, then
component embed + component new), JavaScript apps with componentize-js from npm (the
version pinned in the app's package.json / package-lock.json; `npm ci` installs it into
the app's node_modules on first use). A component is skipped when its stamp file holds
the sha256 of its inputs (sources, WIT files, tool versions, this script) and its
output exists.

The standard `wasi:http` examples (wasi-*) target the vendored WASI packages
(providers/wit/deps/wasi-*, 0.2.12). componentize-js's engine (StarlingMonkey) binds
wasi:http 0.2.10, so the JavaScript build gets a copy of those packages with the
version rewritten to 0.2.10; the host serves every 0.2.x.
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
WASI_VERSION = "0.2.12"  # of the vendored WASI packages
JS_WASI_VERSION = "0.2.10"  # the wasi:http version componentize-js's engine binds
PROXY_WORLD = f"wasi:http/proxy@{WASI_VERSION}"


class BuildError(Exception):
    pass


@dataclass(frozen=True)
class Spec:
    name: str
    world: str
    # A Python app directory (componentize-py), a .wat file (wasm-tools) or a
    # JavaScript app directory with app.js and package.json (componentize-js).
    source: Path

    @property
    def is_python(self) -> bool:
        return self.source.is_dir() and not self.is_js

    @property
    def is_js(self) -> bool:
        return (self.source / "package.json").is_file()

    @property
    def tool_name(self) -> str:
        if self.is_js:
            return "componentize-js"
        return "componentize-py" if self.is_python else "wasm-tools"

    @property
    def wit_files(self) -> list[Path]:
        if self.world == "probe":
            return [*PROBE_WIT.glob("*.wit"), WIT / "deps" / "logging" / "logging.wit"]
        if self.is_js:
            return sorted((WIT / "deps").glob("wasi-*/*.wit"))
        return sorted(WIT.rglob("*.wit"))

    @property
    def source_files(self) -> list[Path]:
        if self.is_js:
            return [self.source / n for n in ("app.js", "package.json", "package-lock.json")]
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
        # Standard wasi:http/proxy components, built by two toolchains (tests/test_wasi_http.py).
        Spec("wasi-hello", PROXY_WORLD, EXAMPLES / "wasi-hello"),
        Spec("wasi-counter", "wasi-http-counter", EXAMPLES / "wasi-counter"),
        Spec("wasi-probe", PROXY_WORLD, EXAMPLES / "wasi-probe"),
        Spec("wasi-hello-js", "wasi-http-js", EXAMPLES / "wasi-hello-js"),
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
    # componentize-js is pinned by the lock file (an input below); node runs it.
    h.update(tool_version("node" if spec.is_js else spec.tool_name).encode())
    # The script itself is an input: it holds the build commands.
    for path in [Path(__file__).resolve(), *spec.wit_files, *spec.source_files]:
        h.update(f"\0{path.relative_to(ROOT)}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def compile_js(spec: Spec, output: Path, tmp: Path) -> None:
    """npm ci (once), then componentize-js against the WASI packages at its version."""
    cli = spec.source / "node_modules" / "@bytecodealliance" / "componentize-js" / "src" / "cli.js"
    installed = spec.source / "node_modules" / ".package-lock.json"
    lock = spec.source / "package-lock.json"
    if not cli.is_file() or not installed.is_file() or _npm_stale(installed, lock):
        run([tool("npm"), "ci", "--no-audit", "--no-fund", "--prefix", str(spec.source)])
    wit_dir = tmp / "wit"
    for package in sorted((WIT / "deps").glob("wasi-*")):
        target = wit_dir / "deps" / package.name
        target.mkdir(parents=True)
        for wit in package.glob("*.wit"):
            text = wit.read_text().replace(f"@{WASI_VERSION}", f"@{JS_WASI_VERSION}")
            (target / wit.name).write_text(text)
    (wit_dir / "world.wit").write_text(
        f"package wasmlattice:js;\n\nworld {spec.world} {{\n"
        f"    include wasi:http/proxy@{JS_WASI_VERSION};\n}}\n"
    )
    run([tool("node"), str(cli), str(spec.source / "app.js"), "--wit", str(wit_dir),
         "-n", spec.world, "-o", str(output)])  # fmt: skip


def _npm_stale(installed: Path, lock: Path) -> bool:
    """Whether node_modules was installed from another lock than the current one."""
    import json

    wanted = json.loads(lock.read_text()).get("packages", {})
    have = json.loads(installed.read_text()).get("packages", {})
    return any(
        have.get(name, {}).get("version") != meta.get("version")
        for name, meta in wanted.items()
        if name.startswith("node_modules/") and not meta.get("optional")
    )


def compile_component(spec: Spec, output: Path, tmp: Path) -> None:
    if spec.is_js:
        compile_js(spec, output, tmp)
        return
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
