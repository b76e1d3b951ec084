"""Loading components: sources, pins, and refusal of anything that is not a component.

The refusals run on the real thing: /dev/zero, a FIFO, procfs, symlinks, and a
real HTTP server that redirects, stalls or answers with a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from host.errors import DigestMismatch, FetchError, InvalidComponent, SourceRefused
from host.runtime.engine import WasmEngine
from host.runtime.loader import LoadPolicy, fetch_component
from lattice.redact import redacted

REPO = Path(__file__).resolve().parent.parent
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def wasm_tools() -> str:
    found = Path(sys.executable).parent / "wasm-tools"
    return str(found) if found.exists() else shutil.which("wasm-tools") or "wasm-tools"


@pytest.fixture
def engine(tmp_path: Path) -> WasmEngine:
    eng = WasmEngine(tmp_path / "cache")
    yield eng
    eng.close()


@pytest.fixture
def policy(tmp_path: Path) -> LoadPolicy:
    """The built components and this test's tmp dir, the default caps."""
    return LoadPolicy.of([REPO / "build", tmp_path])


async def serving(handler: Handler) -> tuple[web.AppRunner, str]:
    """A real HTTP server on a free port answering every path with ``handler``."""
    app = web.Application()
    app.router.add_get("/{name:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def wasm_server(components: dict[str, Path]) -> AsyncIterator[str]:
    """/hello.wasm (~18 MB), /small.wasm, a redirect, a secret 500, a stall, a flood."""
    bodies = {
        "/hello.wasm": components["hello"].read_bytes(),
        "/small.wasm": components["hello-wat"].read_bytes(),
    }

    done = asyncio.Event()

    async def serve(request: web.Request) -> web.StreamResponse:
        if request.path in bodies:
            return web.Response(body=bodies[request.path])
        if request.path == "/moved.wasm":
            raise web.HTTPFound("/small.wasm")
        if request.path == "/internal":
            return web.Response(status=500, text="db password is SECRET-INTERNAL")
        if request.path == "/stall.wasm":
            await done.wait()
        if request.path == "/flood.wasm":  # chunked, no Content-Length, never-ending
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"\0asm\x0d\x00\x01\x00")
            while True:
                await response.write(b"\0" * 2**16)
        return web.Response(status=404, text="nothing here")

    runner, base = await serving(serve)
    try:
        yield base
    finally:
        done.set()
        await runner.cleanup()


# -- pins ------------------------------------------------------------------


async def test_pin_mismatch_on_a_component_shows_no_digest(
    components: dict[str, Path], policy: LoadPolicy
) -> None:
    source = components["hello-wat"]
    actual = hashlib.sha256(source.read_bytes()).hexdigest()
    wrong = "0" * 64
    with pytest.raises(DigestMismatch, match="does not match the pinned digest") as info:
        await fetch_component(str(source), wrong, policy)
    assert wrong not in str(info.value) and actual not in str(info.value)
    # The right pin, with or without the sha256: prefix, is accepted.
    assert await fetch_component(str(source), actual, policy) == source.read_bytes()
    assert await fetch_component(str(source), f"sha256:{actual}", policy) == source.read_bytes()


async def test_pin_on_a_non_component_says_not_a_component(
    tmp_path: Path, policy: LoadPolicy
) -> None:
    """No digest oracle: a secret file is refused on its header, before any hashing."""
    secret = tmp_path / "pin.txt"
    secret.write_text("4711\n")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    for pin in ("0" * 64, digest):  # a wrong guess and the right one answer alike
        with pytest.raises(InvalidComponent, match="not a component") as info:
            await fetch_component(str(secret), pin, policy)
        assert digest not in str(info.value) and "4711" not in str(info.value)


async def test_a_pin_that_is_not_a_digest_is_refused(
    components: dict[str, Path], policy: LoadPolicy
) -> None:
    with pytest.raises(SourceRefused, match="64 hex digits"):
        await fetch_component(str(components["hello-wat"]), "1234", policy)


# -- files -----------------------------------------------------------------


async def test_missing_file_is_a_fetch_error(tmp_path: Path, policy: LoadPolicy) -> None:
    with pytest.raises(FetchError, match="not found"):
        await fetch_component(str(tmp_path / "nope.wasm"), policy=policy)


async def test_default_dirs_serve_the_built_components(
    components: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default policy: the working directory's build/ (tests run from the repo)."""
    monkeypatch.chdir(REPO)
    relative = components["hello-wat"].relative_to(REPO)
    assert await fetch_component(str(relative)) == components["hello-wat"].read_bytes()
    assert await fetch_component(f"file://{components['hello-wat']}") is not None


async def test_a_file_outside_the_artifact_dirs_is_refused(policy: LoadPolicy) -> None:
    for path in ("/etc/passwd", "/etc/no-such-file", f"{REPO}/build/../pyproject.toml"):
        # Refused before it is opened: existing or not, the answer is the same.
        with pytest.raises(SourceRefused, match="outside this host's artifact directories"):
            await fetch_component(path, policy=policy)
    with pytest.raises(SourceRefused, match="outside"):
        await fetch_component("file:///etc/passwd", policy=policy)


async def test_a_symlink_into_a_forbidden_place_is_refused(
    tmp_path: Path, policy: LoadPolicy
) -> None:
    link = tmp_path / "innocent.wasm"
    link.symlink_to("/etc/passwd")
    with pytest.raises(SourceRefused, match="outside"):
        await fetch_component(str(link), policy=policy)
    # A symlinked directory is resolved too.
    (tmp_path / "etc").symlink_to("/etc")
    with pytest.raises(SourceRefused, match="outside"):
        await fetch_component(str(tmp_path / "etc" / "hostname"), policy=policy)


async def test_a_fifo_is_refused_without_blocking(tmp_path: Path, policy: LoadPolicy) -> None:
    fifo = tmp_path / "component.wasm"
    os.mkfifo(fifo)  # no writer: a blocking open would hang here forever
    started = time.monotonic()
    with pytest.raises(SourceRefused, match="is a FIFO, not a regular file"):
        await asyncio.wait_for(fetch_component(str(fifo), policy=policy), 5)
    assert time.monotonic() - started < 2


async def test_a_directory_is_refused(tmp_path: Path, policy: LoadPolicy) -> None:
    (tmp_path / "dir.wasm").mkdir()
    with pytest.raises(SourceRefused, match="is a directory, not a regular file"):
        await fetch_component(str(tmp_path / "dir.wasm"), policy=policy)


async def test_dev_zero_is_refused_quickly_without_memory_growth() -> None:
    """Even where /dev is an artifact dir, a device is never read."""
    assert await _refused_cheaply("/dev/zero", LoadPolicy((Path("/dev"),)), "character device")


async def test_the_cap_holds_while_reading() -> None:
    """procfs files are regular and fstat says 0 bytes; pagemap reads on and on."""
    policy = LoadPolicy((Path("/proc"),), max_bytes=4 * 2**20)
    assert await _refused_cheaply("/proc/self/pagemap", policy, "over the 4 MiB component cap")


async def test_a_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    sparse = tmp_path / "huge.wasm"
    with sparse.open("wb") as out:
        out.truncate(2**30)  # 1 GiB that takes no disk space
    policy = LoadPolicy((tmp_path,), max_bytes=2**20)
    assert await _refused_cheaply(str(sparse), policy, "over the 1 MiB component cap")


async def _refused_cheaply(source: str, policy: LoadPolicy, reason: str) -> bool:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(SourceRefused, match=reason):
            await fetch_component(source, policy=policy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 2
    assert peak < 2 * policy.max_bytes + 8 * 2**20, f"peak {peak} bytes"
    return True


# -- http ------------------------------------------------------------------


async def test_fetch_over_http(components: dict[str, Path], wasm_server: str) -> None:
    body = components["hello-wat"].read_bytes()
    assert await fetch_component(f"{wasm_server}/small.wasm") == body
    with pytest.raises(FetchError, match="HTTP 404"):
        await fetch_component(f"{wasm_server}/missing.wasm")


async def test_an_18_mb_component_loads_over_http(
    components: dict[str, Path], wasm_server: str
) -> None:
    body = components["hello"].read_bytes()
    assert len(body) > 16 * 2**20  # many reads: the old loader stopped after the first
    assert await fetch_component(f"{wasm_server}/hello.wasm") == body


async def test_a_redirect_is_refused(wasm_server: str) -> None:
    with pytest.raises(SourceRefused, match="HTTP 302 is a redirect, and redirects are not"):
        await fetch_component(f"{wasm_server}/moved.wasm")


async def test_an_error_never_carries_the_response_body(wasm_server: str) -> None:
    with pytest.raises(FetchError, match="HTTP 500") as info:
        await fetch_component(f"{wasm_server}/internal")
    assert "SECRET" not in str(info.value)


async def test_a_timeout_is_named(wasm_server: str) -> None:
    policy = LoadPolicy((), fetch_timeout_s=0.5)
    with pytest.raises(FetchError) as info:
        await fetch_component(f"{wasm_server}/stall.wasm", policy=policy)
    assert str(info.value) == f"timed out after 0.5 s fetching {wasm_server}/stall.wasm"


async def test_the_cap_holds_over_http(wasm_server: str) -> None:
    policy = LoadPolicy((), max_bytes=2**20)
    with pytest.raises(SourceRefused, match="over the 1 MiB component cap"):
        await asyncio.wait_for(fetch_component(f"{wasm_server}/flood.wasm", policy=policy), 10)


async def test_credentials_in_a_url_never_reach_an_error(wasm_server: str) -> None:
    base = wasm_server.replace("http://", "http://deploy:hunter2@")
    with pytest.raises(FetchError, match="HTTP 404") as info:
        await fetch_component(f"{base}/missing.wasm?token=abc123&v=2")
    text = str(info.value)
    assert "hunter2" not in text and "abc123" not in text
    assert "deploy:***@" in text and "v=2" in text


async def test_a_refused_connection_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match=r"cannot connect to 127\.0\.0\.1:1 "):
        await fetch_component("http://127.0.0.1:1/x.wasm")


async def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(SourceRefused, match="unsupported source scheme 'ftp'"):
        await fetch_component("ftp://example.com/x.wasm")


def test_redacted_never_raises() -> None:
    assert redacted("http://[::1") == "<unparseable URL>"
    assert redacted("http://h:99999999/x") == "http://h:99999999/x"
    assert redacted("https://TOKEN@h/x") == "https://***@h/x"
    assert (
        redacted("http://h/x?password=p&api_key=k&n=1") == "http://h/x?password=***&api_key=***&n=1"
    )
    assert redacted("redis://db:6379/0") == "redis://db:6379/0"


# -- the header, then wasmtime ---------------------------------------------


def test_garbage_is_refused(engine: WasmEngine) -> None:
    with pytest.raises(InvalidComponent, match="not WebAssembly"):
        engine.compile(b"this is not wasm at all", "garbage.bin")


def test_core_module_is_refused(engine: WasmEngine, tmp_path: Path) -> None:
    wat = tmp_path / "core.wat"
    wat.write_text('(module (func (export "f")))')
    out = tmp_path / "core.wasm"
    subprocess.run([wasm_tools(), "parse", str(wat), "-o", str(out)], check=True)
    with pytest.raises(InvalidComponent, match="core WebAssembly module, not a component"):
        engine.compile(out.read_bytes(), "core.wasm")


def test_truncated_component_is_refused(engine: WasmEngine, components: dict[str, Path]) -> None:
    data = components["hello-wat"].read_bytes()
    with pytest.raises(InvalidComponent, match=r"truncated\.wasm is not a valid component"):
        engine.compile(data[: len(data) // 2], "truncated.wasm")


def test_compile_cache_is_reused(engine: WasmEngine, components: dict[str, Path]) -> None:
    data = components["hello-wat"].read_bytes()
    engine.compile(data, "hello")
    artifacts = list(engine.cache_dir.glob("*.cwasm"))  # type: ignore[union-attr]
    assert len(artifacts) == 1
    mtime = artifacts[0].stat().st_mtime_ns
    time.sleep(0.01)
    engine.compile(data, "hello")
    assert artifacts[0].stat().st_mtime_ns == mtime  # loaded, not rewritten


def test_corrupt_cache_entry_is_recompiled(engine: WasmEngine, components: dict[str, Path]) -> None:
    data = components["hello-wat"].read_bytes()
    engine.compile(data, "hello")
    (artifact,) = engine.cache_dir.glob("*.cwasm")  # type: ignore[union-attr]
    artifact.write_bytes(b"corrupt")
    engine.compile(data, "hello")
    assert artifact.stat().st_size > 100
