"""Loading components: sources, pins, and refusal of anything that is not a component."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from host.errors import DigestMismatch, FetchError, InvalidComponent
from host.runtime.engine import WasmEngine
from host.runtime.loader import fetch_component


def wasm_tools() -> str:
    found = Path(sys.executable).parent / "wasm-tools"
    return str(found) if found.exists() else shutil.which("wasm-tools") or "wasm-tools"


@pytest.fixture
def engine(tmp_path: Path) -> WasmEngine:
    eng = WasmEngine(tmp_path / "cache")
    yield eng
    eng.close()


async def test_pin_mismatch_is_refused(components: dict[str, Path]) -> None:
    source = components["hello-wat"]
    actual = hashlib.sha256(source.read_bytes()).hexdigest()
    wrong = "0" * 64
    with pytest.raises(DigestMismatch) as info:
        await fetch_component(str(source), wrong)
    assert wrong in str(info.value) and actual in str(info.value)
    # The right pin, with or without the sha256: prefix, is accepted.
    assert await fetch_component(str(source), actual) == source.read_bytes()
    assert await fetch_component(str(source), f"sha256:{actual}") == source.read_bytes()


async def test_missing_file_is_a_fetch_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="not found"):
        await fetch_component(str(tmp_path / "nope.wasm"))


async def test_fetch_over_http(components: dict[str, Path]) -> None:
    body = components["hello-wat"].read_bytes()

    async def serve(request: web.Request) -> web.Response:
        if request.path == "/hello.wasm":
            return web.Response(body=body)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        assert await fetch_component(f"http://127.0.0.1:{port}/hello.wasm") == body
        with pytest.raises(FetchError, match="HTTP 404"):
            await fetch_component(f"http://127.0.0.1:{port}/missing.wasm")
    finally:
        await runner.cleanup()


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
