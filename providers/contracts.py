"""Names of the WIT interfaces the built-in providers implement."""

from __future__ import annotations

from pathlib import Path

WIT_DIR = Path(__file__).parent / "wit"

LOGGING = "wasi:logging/logging@0.1.0-draft"
KEYVALUE_STORE = "wasi:keyvalue/store@0.2.0-draft"
KEYVALUE_ATOMICS = "wasi:keyvalue/atomics@0.2.0-draft"
CONFIG_STORE = "wasi:config/store@0.2.0-draft"
HTTP_HANDLER = "wasmlattice:http/incoming-handler@0.1.0"

# Which interfaces each provider kind serves; a link names the provider kind.
PROVIDER_INTERFACES: dict[str, tuple[str, ...]] = {
    "keyvalue": (KEYVALUE_STORE, KEYVALUE_ATOMICS),
    "logging": (LOGGING,),
    "config": (CONFIG_STORE,),
}

# Granted to every component without a link: each only reaches the component's
# own log stream or its own configuration, never shared state.
ALWAYS_GRANTED = (LOGGING, CONFIG_STORE)

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


def unversioned(interface: str) -> str:
    return interface.split("@", 1)[0]
