"""``wasi:filesystem`` and ``wasi:sockets``, denied: no preopens, no network.

Nothing here is written per function: each function the component imports
gets its answer from its type, so every 0.2.x version (and functions added
later) is covered:

- ``preopens.get-directories`` is empty, so no descriptor ever exists;
- ``instance-network`` hands out a network handle that permits nothing;
- a function returning ``result<_, error-code>`` answers ``access-denied``;
- one returning an option (``filesystem-error-code``) answers none;
- anything else can only be reached through a handle that is never handed
  out, and traps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from host.runtime.wasi.table import KINDS, HostObject, ResourceTable, WasiTrap
from host.runtime.wasi.values import Err
from host.runtime.wit_types import WitEnum, WitFunc, WitOption, WitResult

__all__ = ["DENIED_PACKAGES", "denied_function"]

DENIED_PACKAGES = ("wasi:filesystem", "wasi:sockets")


class Network(HostObject):
    """The network handle of ``instance-network``: no operation accepts it."""

    KIND = KINDS["network"]


def denied_function(
    interface: str, name: str, func: WitFunc, table: ResourceTable
) -> Callable[..., Any]:
    if name == "instance-network":
        return lambda _s: table.own(Network())
    if name == "get-directories":
        return lambda _s: []
    result = func.result
    if isinstance(result, WitResult) and isinstance(result.err, WitEnum):
        if "access-denied" in result.err.names:
            return lambda _s, *_args: Err("access-denied")
    if isinstance(result, WitOption):
        return lambda _s, *_args: None

    def unreachable(_s: Any, *_args: Any) -> Any:
        raise WasiTrap(f"{interface}#{name}: this host grants no files or sockets")

    return unreachable
