"""The WIT interfaces (contracts) that providers serve to components, by full name.

A component imports these; a provider kind (``catalog.kinds``) binds them. The WIT
files themselves ship with the providers (``providers/wit``).
"""

from __future__ import annotations

LOGGING = "wasi:logging/logging@0.1.0-draft"
KEYVALUE_STORE = "wasi:keyvalue/store@0.2.0-draft"
KEYVALUE_ATOMICS = "wasi:keyvalue/atomics@0.2.0-draft"
CONFIG_STORE = "wasi:config/store@0.2.0-draft"
# Exported by components that serve HTTP; the http-server provider calls it.
HTTP_HANDLER = "wasmlattice:http/incoming-handler@0.1.0"


def unversioned(interface: str) -> str:
    """``ns:pkg/iface@1.2.3`` -> ``ns:pkg/iface`` (links and subjects name interfaces so)."""
    return interface.split("@", 1)[0]
