"""Where a start's time goes: the steps of ``HostDaemon.apply`` replayed one by one, timed.

The replay runs in the bench process, with the daemon's own library calls (the link
scan, ``fetch_component``, the compile cache, ``build_linker``, ``InstancePool.warm(1)``),
against the same nats-server and compile cache as the host daemon of the control section.
That section interleaves a replayed start with each real one, so both see a links bucket
of the same size.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.context import CACHE_DIR
from bench.procs import BenchProcessError
from bench.sections.control_lattice import Lattice, delete_link, http_link

if TYPE_CHECKING:
    from wasmtime import component as wc

    from host.runtime.engine import WasmEngine
    from lattice.state import LatticeState

KV_STEPS = ["read links from and to the component (KV, one scan)"]


@dataclass
class Laps:
    """A stopwatch that files each lap (ms) under a label."""

    ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _last: float = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()

    def lap(self, label: str) -> None:
        now = time.perf_counter()
        self.ms[label].append((now - self._last) * 1000)
        self._last = now


class Replay:
    """Runs the steps of a daemon's start in this process, timing each one."""

    def __init__(self, lattice: Lattice) -> None:
        from host.runtime.engine import WasmEngine
        from lattice.state import LatticeState

        self.lattice = lattice
        self.engine = WasmEngine(CACHE_DIR)
        self.state = LatticeState(lattice.nc, lattice.client.subjects, source="bench")

    async def warm_up(self, wasm: dict[str, Path]) -> None:
        """Untimed: opens the links bucket once, as a running daemon already has."""
        for name, path in wasm.items():
            await self.start(f"{name}-replay-warmup", path)

    async def start(self, component_id: str, path: Path) -> dict[str, float]:
        """One start with its HTTP link in place; returns ms per step."""
        link = http_link(component_id)
        await self.lattice.client.put_link(link)
        laps = Laps()
        try:
            await _replay_start(self.state, self.engine, component_id, path, laps)
        finally:
            await delete_link(self.lattice, link)
        return {step: ms[0] for step, ms in laps.ms.items()}

    async def read_links(self, component_id: str) -> dict[str, float]:
        """Only the link reads of a start."""
        laps = Laps()
        laps.start()
        await _read_links(self.state, component_id, laps)
        return {step: ms[0] for step, ms in laps.ms.items()}

    def close(self) -> None:
        self.engine.close()


async def _read_links(state: LatticeState, component_id: str, laps: Laps) -> None:
    # HostDaemon.apply reads the links from and to the component in one scan.
    await state.links_of(component_id)
    laps.lap(KV_STEPS[0])


async def _replay_start(
    state: LatticeState, engine: WasmEngine, component_id: str, path: Path, laps: Laps
) -> None:
    """What ``HostDaemon.apply`` + ``HostRuntime.start`` do for a new component, timed."""
    from host.runtime.bindings import Grants, build_linker, exported_interfaces
    from host.runtime.loader import fetch_component
    from host.runtime.pool import InstancePool, Limits

    laps.start()
    await _read_links(state, component_id, laps)
    wasm = await fetch_component(str(path))
    laps.lap("fetch: read the .wasm file")
    digest = hashlib.sha256(wasm).hexdigest()
    laps.lap("sha256 digest of the bytes")
    compiled = await asyncio.to_thread(_load_cached, engine, digest, str(path), laps)
    laps.lap("hop back to the event loop")
    linker = build_linker(engine.engine, compiled, Grants(component_id, asyncio.get_running_loop()))
    laps.lap("build the linker (import checks, WASI)")
    pool = InstancePool(component_id, engine, compiled, linker, Limits())
    await pool.warm(1)
    laps.lap("instantiate one instance (+ its worker thread)")
    exported_interfaces(engine.engine, compiled)
    laps.lap("list exports")
    await pool.close()


def _load_cached(engine: WasmEngine, digest: str, source: str, laps: Laps) -> wc.Component:
    """``WasmEngine.compile`` on a cache hit, split into its two costs."""
    from wasmtime import component as wc

    laps.lap("hop to a worker thread")
    cached = engine._cache_path(digest)
    laps.lap("compile-cache key")
    if cached is None or not cached.exists():
        raise BenchProcessError(f"{source} is not in the compile cache {CACHE_DIR}")
    compiled = wc.Component.deserialize_file(engine.engine, str(cached))
    laps.lap("deserialize the compiled artifact")
    return compiled
