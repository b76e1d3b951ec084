"""The wasmtime engine, its epoch clock, and the on-disk compile cache.

One engine per host. Epoch interruption gives every call a deadline: a daemon
thread bumps the engine's epoch every ``tick`` seconds and each store arms a
deadline of ``ceil(deadline / tick)`` ticks before a call.

Compiling an 18 MB Python component takes seconds; deserialising the compiled
artifact takes milliseconds. The cache key covers the component's digest, the
wasmtime version and the engine settings, since a serialised artifact is only
valid for the engine configuration that produced it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import wasmtime
from wasmtime import component as wc

from host.errors import InvalidComponent
from host.runtime.loader import check_component_bytes

log = logging.getLogger(__name__)


# Wasmtime's "hostcall fuel": however a store is set up, one call may copy at most
# 128 MiB of host values *out of* a guest (a guest's results, or the arguments
# of a host function it calls). The C API that wasmtime-py 50 binds lifts every
# value into a `Val` of 48 bytes, element by element, so a `list<u8>` of more
# than ~2.79 million bytes exhausts it ("fuel allocated for hostcalls has been
# exhausted"): an HTTP response body, for one. Values passed *into* a guest are
# not charged, so request bodies of any allowed size reach the component.
# `Store::set_hostcall_fuel` exists in wasmtime's Rust API only: neither
# wasmtime-py's `Store`/`Config` nor its C library (50.0.1) expose it.
HOSTCALL_FUEL_BYTES = 128 * 2**20
LIFTED_VALUE_BYTES = 48
MAX_BYTES_OUT_OF_GUEST = HOSTCALL_FUEL_BYTES // LIFTED_VALUE_BYTES


@dataclass(frozen=True)
class EngineSettings:
    """Settings that change compiled code; part of the compile-cache key."""

    epoch_tick_s: float = 0.005
    cranelift_opt_level: str = "speed"

    def cache_tag(self) -> str:
        return f"wasmtime-{version('wasmtime')}-opt-{self.cranelift_opt_level}-epoch"


class WasmEngine:
    """Owns the wasmtime ``Engine``, its epoch ticker and the compile cache."""

    def __init__(self, cache_dir: Path | None, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.cranelift_opt_level = self.settings.cranelift_opt_level
        config.wasm_component_model = True
        self.engine = wasmtime.Engine(config)
        self.cache_dir = cache_dir
        self._stop = threading.Event()
        self.epoch = 0  # ticks so far (wasmtime's epoch starts at 0)
        self._ticker = threading.Thread(target=self._tick, name="epoch-ticker", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.settings.epoch_tick_s):
            self.engine.increment_epoch()
            # Read by inline attempts to share their budget with nested calls; it may
            # trail the engine's epoch by one tick for a moment.
            self.epoch += 1

    def deadline_ticks(self, seconds: float) -> int:
        """Epoch ticks that cover ``seconds`` of execution (at least one)."""
        return max(1, math.ceil(seconds / self.settings.epoch_tick_s))

    def close(self) -> None:
        self._stop.set()

    def compile(self, wasm: bytes, source: str, digest: str | None = None) -> wc.Component:
        """Compile (or load from cache) the component in ``wasm`` (sha256 ``digest``)."""
        check_component_bytes(wasm, source)
        cached = self._cache_path(digest or hashlib.sha256(wasm).hexdigest())
        if cached is not None and cached.exists():
            try:
                return wc.Component.deserialize_file(self.engine, str(cached))
            except wasmtime.WasmtimeError as exc:
                # A stale or corrupt artifact is not fatal: recompile and overwrite it.
                log.warning("discarding unusable compile cache entry %s: %s", cached, exc)
        try:
            compiled = wc.Component(self.engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise InvalidComponent(f"{source} is not a valid component: {first_line(exc)}") from exc
        if cached is not None:
            self._store(cached, bytes(compiled.serialize()))
        return compiled

    def _cache_path(self, digest: str) -> Path | None:
        if self.cache_dir is None:
            return None
        # Hash the digest, not the bytes again: an 18 MB component costs ~10 ms a pass.
        key = hashlib.sha256(f"{self.settings.cache_tag()}:{digest}".encode()).hexdigest()
        return self.cache_dir / f"{key}.cwasm"

    @staticmethod
    def _store(path: Path, artifact: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a concurrent reader never sees half a file.
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(artifact)
        tmp.replace(path)


def trap_reason(exc: BaseException) -> str:
    """The one line of a wasmtime error that says why (it follows a backtrace)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if "wasm trap:" in line:
            return line[line.index("wasm trap:") :]
    return lines[-1] if lines else type(exc).__name__


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
