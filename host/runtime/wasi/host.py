"""Which WASI interfaces the host serves itself, and binding them to one component.

The table of what is served is built from the component's own import types:
for each imported WASI interface (by its exact name, so ``wasi:io/streams@0.2.12``
next to ``wasi:filesystem/types@0.2.9`` is fine), every resource it names gets
a host-defined kind (``table.KINDS``), and every function it imports gets the
implementation of that name from the modules of this package, or, for the
denied packages, one derived from its type (``denied``). Values cross in the
plain spelling of ``values`` through the fast converters of ``trampoline``,
compiled once per function from its type as imported.

Versions: every ``0.2.x`` of these packages is served (the vendored WIT is
0.2.12, ``providers/wit/deps/WASI.md``). An import outside that range, or a
function this host does not implement (one added after 0.2.12, say), is
refused at start, naming it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import wasmtime
from wasmtime import component as wc

from catalog.contracts import unversioned, version_track
from host.runtime.wasi import cli, clocks, http_outgoing, http_types, io, random
from host.runtime.wasi.denied import DENIED_PACKAGES, denied_function
from host.runtime.wasi.http_outgoing import HttpClientGrant
from host.runtime.wasi.http_types import Exchange
from host.runtime.wasi.table import DENIED_KIND_BASE, KINDS, ResourceTable
from host.runtime.wasi.trampoline import add_fast_func, add_fast_resource
from host.runtime.wit_types import WitFunc, describe_func
from providers.http_server import ResponseSink, StreamedRequest

__all__ = ["SERVED_VERSIONS", "WasiHost"]

SERVED_PACKAGES = (
    "wasi:cli",
    "wasi:clocks",
    "wasi:filesystem",
    "wasi:http",
    "wasi:io",
    "wasi:random",
    "wasi:sockets",
)
SERVED_TRACK = "0.2"
SERVED_VERSIONS = "0.2.0 to 0.2.x (WIT vendored at 0.2.12)"

HostFunc = Callable[..., Any]


def _package(interface: str) -> str:
    return unversioned(interface).split("/", 1)[0]


class WasiHost:
    """The WASI interfaces one component imports, served by the host."""

    def __init__(
        self,
        component_id: str,
        loop: asyncio.AbstractEventLoop,
        deadline_s: float,
        environment: Mapping[str, str],
        http: HttpClientGrant,
    ) -> None:
        self.component_id = component_id
        self.table = ResourceTable(loop, deadline_s)
        self._functions: dict[str, Mapping[str, HostFunc]] = {}
        self._functions.update(io.functions(self.table))
        self._functions.update(cli.functions(self.table, component_id, environment))
        self._functions.update(clocks.functions(self.table))
        self._functions.update(random.functions())
        incoming = dict(http_types.functions(self.table))
        outgoing_types, outgoing_handler = http_outgoing.functions(self.table, http)
        self._functions["wasi:http/types"] = {**incoming, **outgoing_types}
        self._functions["wasi:http/outgoing-handler"] = outgoing_handler
        self._denied_kinds: dict[str, int] = {}

    @staticmethod
    def served(interface: str) -> bool:
        """Whether ``interface`` is one of the WASI packages this host serves itself."""
        return _package(interface) in SERVED_PACKAGES

    def missing(self, engine: wasmtime.Engine, component: wc.Component) -> list[str]:
        """The WASI imports (and functions) this host cannot serve, each named."""
        found = []
        for name, extern in component.type.imports(engine).items():
            if not self.served(name):
                continue
            if version_track(name) != SERVED_TRACK:
                found.append(f"{name} (this host serves {unversioned(name)}@{SERVED_VERSIONS})")
                continue
            for func, ty in _exports(engine, extern).items():
                if isinstance(ty, wc.FuncType) and self._implementation(name, func) is None:
                    found.append(f"{name}#{func} (not implemented by this host)")
        return found

    def bind(
        self, root: wc.LinkerInstance, engine: wasmtime.Engine, component: wc.Component
    ) -> None:
        """Define every served WASI import of ``component`` under its exact name."""
        for name, extern in component.type.imports(engine).items():
            if not self.served(name):
                continue
            with root.add_instance(name) as instance:
                for item, ty in _exports(engine, extern).items():
                    if isinstance(ty, wc.ResourceType):
                        kind = wc.ResourceType.host(self._kind(item))
                        add_fast_resource(instance, item, kind, self.table.drop)
                    elif isinstance(ty, wc.FuncType):
                        impl = self._implementation(name, item)
                        assert impl is not None  # missing() refused the component otherwise
                        add_fast_func(instance, item, _builder(impl, ty))

    def exchange(self, request: StreamedRequest, sink: ResponseSink, deadline_s: float) -> Exchange:
        return Exchange(self.table, request, sink, deadline_s)

    def _implementation(self, interface: str, func: str) -> HostFunc | _Denied | None:
        found = self._functions.get(unversioned(interface), {}).get(func)
        if found is None and _package(interface) in DENIED_PACKAGES:
            return _Denied(interface, func, self.table)
        return found

    def _kind(self, resource: str) -> int:
        kind = KINDS.get(resource)
        if kind is None:  # a resource of a denied package: never handed out
            kind = self._denied_kinds.setdefault(
                resource, DENIED_KIND_BASE + len(self._denied_kinds)
            )
        return kind


class _Denied:
    """A deny-all function, made once its type is known (``denied.denied_function``)."""

    def __init__(self, interface: str, func: str, table: ResourceTable) -> None:
        self.interface, self.func, self.table = interface, func, table


def _exports(engine: wasmtime.Engine, extern: Any) -> dict[str, Any]:
    ty = extern.ty
    if not isinstance(ty, wc.ComponentInstanceType):
        return {}
    return {name: item.ty for name, item in ty.exports(engine).items()}


def _builder(impl: HostFunc | _Denied, ty: wc.FuncType) -> Callable[[], tuple[HostFunc, WitFunc]]:
    """What ``add_fast_func`` builds on the first call: ``impl`` (or the deny-all
    function the type calls for) and the type's description (``ty`` is kept alive)."""

    def build() -> tuple[HostFunc, WitFunc]:
        func = describe_func(ty)
        if isinstance(impl, _Denied):
            return denied_function(impl.interface, impl.func, func, impl.table), func
        return impl, func

    return build
