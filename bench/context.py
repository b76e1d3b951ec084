"""What every section shares: paths, run options, the expected hello answer, components."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMPONENTS_DIR = REPO / "build" / "components"
# Its own compile cache, so a bench never races the tests' cache or a host's state dir.
CACHE_DIR = REPO / "build" / "bench-compile-cache"
LOG_DIR = REPO / "build" / "bench-logs"

HELLO_BODY = b"Hello from wasmlattice!\n"
HELLO_CONTENT_TYPE = "text/plain"


@dataclass(frozen=True)
class Config:
    """Command-line overrides; ``None`` means "the section's own default"."""

    rounds: int | None = None
    duration_s: float | None = None

    def rounds_or(self, default: int) -> int:
        return self.rounds if self.rounds is not None else default

    def duration_or(self, default: float) -> float:
        return self.duration_s if self.duration_s is not None else default


def prepare_components(names: list[str]) -> dict[str, Path]:
    """Build the named example components and fill the compile cache.

    Compiling the 18 MB componentize-py component takes seconds on a cold cache;
    doing it here keeps that out of server start-up timeouts and out of every
    measurement.
    """
    # Imported here: the build script and wasmtime are only needed by sections that use them.
    from examples.build_components import build_all
    from host.runtime.engine import WasmEngine

    built = build_all(COMPONENTS_DIR, names, log=None)
    engine = WasmEngine(CACHE_DIR)
    try:
        for name in names:
            started = time.monotonic()
            engine.compile(built[name].read_bytes(), str(built[name]))
            took = time.monotonic() - started
            if took > 1.0:
                print(f"(compiled {name} into {CACHE_DIR.relative_to(REPO)} in {took:.1f} s)")
    finally:
        engine.close()
    return built
