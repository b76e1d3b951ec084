"""Interfaces wadm knows by name, to warn about a misspelt one as wadm does.

A link names ``namespace:package/interface``. Under a namespace nobody here owns
(``wasmlattice``, a user's own) any name is fine. Under a namespace wadm knows
(``wasi``, ``wrpc``, ``wasmcloud``) an unknown package or an unknown interface of a
known package is probably a typo (``incoming_handler``), so it is a warning, never an
error: a newer interface may not be listed yet. The table is wadm's, plus
``wasi:config/store`` (the current name of ``runtime``), which this project serves.
"""

from __future__ import annotations

from collections.abc import Mapping

KNOWN_INTERFACES: Mapping[str, Mapping[str, frozenset[str]]] = {
    "wrpc": {
        "blobstore": frozenset({"blobstore"}),
        "keyvalue": frozenset({"atomics", "store"}),
        "http": frozenset({"incoming-handler", "outgoing-handler"}),
    },
    "wasi": {
        "blobstore": frozenset({"blobstore"}),
        "config": frozenset({"runtime", "store"}),
        "keyvalue": frozenset({"atomics", "store", "batch", "watch"}),
        "http": frozenset({"incoming-handler", "outgoing-handler"}),
        "logging": frozenset({"logging"}),
    },
    "wasmcloud": {
        "messaging": frozenset({"consumer", "handler"}),
    },
}


def interface_warning(namespace: str, package: str, interface: str) -> str | None:
    """Why ``namespace:package/interface`` looks misnamed, or None."""
    packages = KNOWN_INTERFACES.get(namespace)
    if packages is None:
        return None
    name = f"{namespace}:{package}/{interface}"
    known = packages.get(package)
    if known is None:
        listed = ", ".join(sorted(packages))
        return f"unrecognized interface {name}: {namespace} has no package '{package}' ({listed})"
    if interface not in known:
        listed = ", ".join(sorted(known))
        return f"unrecognized interface {name}: {namespace}:{package} has {listed}"
    return None
