"""The contracts as the host runtime binds them: interface names from ``catalog``,
the WIT files that define them, and the WASI interfaces wasmtime serves itself.

The names are defined once, in ``catalog.contracts`` and ``catalog.kinds``; this module
gathers what ``host.runtime`` needs in one import.
"""

from __future__ import annotations

from pathlib import Path

from catalog.contracts import (
    CONFIG_STORE,
    HTTP_HANDLER,
    KEYVALUE_ATOMICS,
    KEYVALUE_STORE,
    LOGGING,
    WASI_HTTP_INCOMING,
    WASI_HTTP_OUTGOING,
    unversioned,
)
from catalog.kinds import ALWAYS_GRANTED, PROVIDER_INTERFACES

__all__ = [
    "ALWAYS_GRANTED",
    "CONFIG_STORE",
    "HTTP_HANDLER",
    "KEYVALUE_ATOMICS",
    "KEYVALUE_STORE",
    "LOGGING",
    "PROVIDER_INTERFACES",
    "WASI_HTTP_INCOMING",
    "WASI_HTTP_OUTGOING",
    "WASI_PREFIXES",
    "WIT_DIR",
    "unversioned",
]

WIT_DIR = Path(__file__).parent / "wit"

# WASI p2 interfaces served by wasmtime itself, with no ambient authority
# (no env, args, preopens, sockets or stdin unless granted).
WASI_PREFIXES = (
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
)
