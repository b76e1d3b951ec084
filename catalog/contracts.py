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
# The standard HTTP contracts (wasi:http/proxy): served by the http-server provider
# (incoming) and the http-client kind (outgoing); any 0.2.x version matches.
WASI_HTTP_INCOMING = "wasi:http/incoming-handler@0.2.0"
WASI_HTTP_OUTGOING = "wasi:http/outgoing-handler@0.2.0"


def unversioned(interface: str) -> str:
    """``ns:pkg/iface@1.2.3`` -> ``ns:pkg/iface`` (links and subjects name interfaces so)."""
    return interface.split("@", 1)[0]


def version_track(interface: str) -> str:
    """The part of an interface's version that semver-compatible versions share.

    wasmtime's rule for matching imports: ``1.2.3`` matches any ``1.x.y``, ``0.2.3``
    any ``0.2.x``; ``0.0.3`` and pre-releases (``0.2.0-draft``) match only themselves.
    """
    _, _, version = interface.partition("@")
    parts = version.split(".")
    if not version or "-" in version or "+" in version or len(parts) != 3:
        return version
    major, minor, _ = parts
    if major != "0":
        return major
    return f"0.{minor}" if minor != "0" else version


def compatible(imported: str, provided: str) -> bool:
    """Whether an import is served by a provided interface (same name, same semver track)."""
    return unversioned(imported) == unversioned(provided) and version_track(
        imported
    ) == version_track(provided)
