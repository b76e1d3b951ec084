"""Bind a component's imports to what its links grant, and nothing else.

The linker for a component gets:

- WASI p2, with no ambient authority, served by the host itself
  (``host.runtime.wasi``): no arguments, preopened directories, sockets or
  stdin, and only the environment variables its config grants (keys
  ``env.NAME``; none by default). Stdout/stderr go to the host log tagged with
  the component id. ``wasi:http`` is served in and out, with outgoing requests
  under the component's ``http-client`` link (nothing allowed without one).
  Not wasmtime's own WASI (``add_wasip2``): its blocking calls (a sleep) could
  not be refused on the event loop's thread, where the host tries short calls
  first (``host.runtime.inline``).
- ``wasi:logging`` and ``wasi:config``, which only reach the component's own
  log stream and configuration.
- ``wasi:keyvalue/store`` + ``atomics`` only when a keyvalue link exists.

Interfaces match by semver as wasmtime matches them (``catalog.contracts.compatible``:
``0.2.3`` serves any ``0.2.x``, a pre-release only itself), and are defined
under the name the component imports. Anything else the component imports is
a ``LinkError`` at start, naming each missing interface (and the versions this
host has of it); nothing is stubbed with traps.

Host functions run on the thread that runs the guest: a worker, whose provider
calls are coroutines handed to the host's event loop (``_await``), or the loop's
own thread during an attempt, where such a call refuses (``inline.refuse``).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import wasmtime
from wasmtime import component as wc

from catalog.contracts import compatible
from catalog.kinds import KEYVALUE
from host.errors import LinkError
from host.runtime import inline
from host.runtime.wasi import HttpClientGrant, WasiHost
from host.runtime.wasi.trampoline import add_fast_func, add_fast_resource
from host.runtime.wasi.values import Err, Ok, Variant
from host.runtime.wit_types import WitFunc, describe_func
from host.runtime.wit_values import HostHandle
from providers import contracts
from providers.config_provider import ComponentConfig
from providers.http_client import HttpClient, HttpClientPolicy
from providers.keyvalue import KeyValueBackend, KeyValueError, resolve_bucket
from providers.logging_provider import log_from_component

log = logging.getLogger(__name__)
T = TypeVar("T")

BUCKET_RESOURCE_TYPE = 1
HOST_CALL_TIMEOUT_S = 5.0
# Component config keys under this prefix are environment variables (``env.HOME=/x``).
ENV_PREFIX = "env."


def granted_environment(config: Mapping[str, str]) -> dict[str, str]:
    """The environment variables a component's config grants it (keys ``env.NAME``)."""
    return {k[len(ENV_PREFIX) :]: v for k, v in config.items() if k.startswith(ENV_PREFIX)}


@dataclass
class KeyResponse:
    """The ``key-response`` record (records lower by attribute name)."""

    keys: list[str]
    cursor: int | None


@dataclass
class KeyValueGrant:
    backend: KeyValueBackend
    link_config: Mapping[str, str]


# invoke(target component, imported interface, function, args, function type) -> result;
# runs on the caller's worker thread.
ComponentInvoker = Callable[[str, str, str, tuple[Any, ...], wc.FuncType], Any]


@dataclass
class Grants:
    """What one component may reach; built from its links and spec."""

    component_id: str
    loop: asyncio.AbstractEventLoop
    config: ComponentConfig = field(default_factory=lambda: ComponentConfig({}))
    keyvalue: KeyValueGrant | None = None
    # Unversioned interface ("ns:pkg/iface") -> the component id that serves it.
    component_links: dict[str, str] = field(default_factory=dict)
    invoke: ComponentInvoker | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    # Outgoing wasi:http; None: the component may reach nothing (every request denied).
    http_client: HttpClientGrant | None = None
    # Bounds the host's waits for the guest outside an HTTP exchange.
    deadline_s: float = 10.0

    def provider_interfaces(self) -> list[str]:
        """The non-WASI interfaces granted by providers (logging, config, linked kinds)."""
        provided = list(contracts.ALWAYS_GRANTED)
        if self.keyvalue is not None:
            provided.extend(contracts.PROVIDER_INTERFACES[KEYVALUE])
        return provided

    def provided(self, interface: str) -> bool:
        return any(compatible(interface, p) for p in self.provider_interfaces()) or (
            self.invoke is not None and contracts.unversioned(interface) in self.component_links
        )

    def why_missing(self, interface: str) -> str:
        """``interface``, with the versions this host has of it, if any."""
        same = [
            p
            for p in self.provider_interfaces()
            if contracts.unversioned(p) == contracts.unversioned(interface)
        ]
        return f"{interface} (this host provides {', '.join(same)})" if same else interface


def imported_interfaces(engine: wasmtime.Engine, component: wc.Component) -> list[str]:
    return sorted(component.type.imports(engine).keys())


def exported_interfaces(engine: wasmtime.Engine, component: wc.Component) -> list[str]:
    return sorted(component.type.exports(engine).keys())


def types_only_imports(engine: wasmtime.Engine, component: wc.Component) -> list[str]:
    """Imported interfaces that declare only types (e.g. ``wasmlattice:http/types``).

    They grant nothing, so an empty instance satisfies them.
    """
    found = []
    for name, extern in component.type.imports(engine).items():
        item = extern.ty
        if isinstance(item, wc.ComponentInstanceType) and not any(
            isinstance(export.ty, wc.FuncType | wc.ResourceType)
            for export in item.exports(engine).values()
        ):
            found.append(name)
    return found


def check_imports(
    engine: wasmtime.Engine,
    component: wc.Component,
    grants: Grants,
    wasi: WasiHost,
) -> None:
    """Raise LinkError naming every import that nothing provides to this component."""
    types_only = set(types_only_imports(engine, component))
    missing = [
        grants.why_missing(name)
        for name in imported_interfaces(engine, component)
        if not grants.provided(name) and name not in types_only and not wasi.served(name)
    ]
    missing.extend(wasi.missing(engine, component))
    if missing:
        raise LinkError(grants.component_id, missing)


@dataclass(frozen=True)
class Linked:
    """A component's linker, and the host's WASI it is bound to."""

    linker: wc.Linker
    wasi: WasiHost


def link_component(engine: wasmtime.Engine, component: wc.Component, grants: Grants) -> Linked:
    """Check the component's imports against its grants and build its linker."""
    imports = imported_interfaces(engine, component)
    http = grants.http_client or HttpClientGrant(HttpClient(), HttpClientPolicy())
    wasi = WasiHost(grants.component_id, grants.loop, grants.deadline_s, grants.environment, http)
    check_imports(engine, component, grants, wasi)
    linker = wc.Linker(engine)
    with linker.root() as root:
        wasi.bind(root, engine, component)
        for name in types_only_imports(engine, component):
            with root.add_instance(name):
                pass
        for name in imports:
            if compatible(name, contracts.LOGGING):
                _bind_fast(root, engine, component, name, _logging(grants))
            elif compatible(name, contracts.CONFIG_STORE):
                _bind_fast(root, engine, component, name, _config(grants))
            elif (target := grants.component_links.get(contracts.unversioned(name))) is not None:
                if grants.invoke is not None:
                    _bind_component_link(root, engine, component, name, target, grants)
        if grants.keyvalue is not None:
            _KeyValueBinding(grants, grants.keyvalue).bind(root, engine, component, imports)
    return Linked(linker, wasi)


def build_linker(engine: wasmtime.Engine, component: wc.Component, grants: Grants) -> wc.Linker:
    return link_component(engine, component, grants).linker


def interface_functions(
    engine: wasmtime.Engine, extern: Any, where: str, *, host_resources: bool = False
) -> dict[str, wc.FuncType]:
    """The functions of an imported or exported interface, by name.

    Its resources are refused (they cannot cross components), unless
    ``host_resources``: the host defines them itself (keyvalue's bucket).
    """
    item = extern.ty
    if not isinstance(item, wc.ComponentInstanceType):
        raise LinkError(where, [f"{where} is not an interface"])
    functions = {}
    for name, export in item.exports(engine).items():
        ty = export.ty
        if isinstance(ty, wc.FuncType):
            functions[name] = ty
        elif isinstance(ty, wc.ResourceType) and not host_resources:
            raise LinkError(where, [f"{where} uses resources, which cannot cross components"])
    return functions


def _bind_component_link(
    root: wc.LinkerInstance,
    engine: wasmtime.Engine,
    component: wc.Component,
    interface: str,
    target: str,
    grants: Grants,
) -> None:
    """Each function of ``interface`` calls the same function of component ``target``."""
    invoke = grants.invoke
    assert invoke is not None
    extern = component.type.imports(engine)[interface]
    functions = interface_functions(engine, extern, interface)

    def forward(name: str, func_type: wc.FuncType) -> Callable[..., Any]:
        def call(_context: int, *args: Any) -> Any:
            return invoke(target, interface, name, args, func_type)

        return call

    # Through the fast trampoline, in wasmtime-py's spelling: the callee's export
    # call (or the wire codec) takes the values as they are. wasmtime-py's
    # ``add_func`` re-derived the types on every call: a third of the worker's
    # time in a cross-host call under load, measured.
    with root.add_instance(interface) as iface:
        for name, func_type in functions.items():
            build = functools.partial(_described, forward(name, func_type), func_type)
            add_fast_func(iface, name, build, plain=False)


def _bind_fast(
    root: wc.LinkerInstance,
    engine: wasmtime.Engine,
    component: wc.Component,
    name: str,
    impls: Mapping[str, Callable[..., Any]],
) -> None:
    """Define ``impls`` for the imported interface ``name`` through the fast trampoline.

    Values cross in the plain spelling of ``host.runtime.wasi.values``, converted by
    converters compiled once from the imported type: wasmtime-py's ``add_func``
    re-derives and converts the types on every call (a third of a short guest call
    that reads its config, measured). A function the import lacks is not defined.
    """
    with root.add_instance(name) as iface:
        _define_fast(iface, _imported(engine, component, name), impls)


def _imported(
    engine: wasmtime.Engine, component: wc.Component, name: str
) -> dict[str, wc.FuncType]:
    """The functions of the interface ``name`` as ``component`` imports it (its
    resources, keyvalue's bucket, are the caller's to define)."""
    extern = component.type.imports(engine)[name]
    return interface_functions(engine, extern, name, host_resources=True)


def _define_fast(
    iface: wc.LinkerInstance,
    functions: Mapping[str, wc.FuncType],
    impls: Mapping[str, Callable[..., Any]],
) -> None:
    """Define each of ``impls`` that ``functions`` (the imported types) holds."""
    for func, impl in impls.items():
        if func in functions:
            add_fast_func(iface, func, functools.partial(_described, impl, functions[func]))


def _described(impl: Callable[..., Any], ty: wc.FuncType) -> tuple[Callable[..., Any], WitFunc]:
    return impl, describe_func(ty)


def _logging(grants: Grants) -> dict[str, Callable[..., Any]]:
    component_id = grants.component_id

    def log_(_context: int, level: str, context: str, message: str) -> None:
        inline.hold(log_from_component, component_id, level, context, message)

    return {"log": log_}


def _config(grants: Grants) -> dict[str, Callable[..., Any]]:
    config = grants.config
    return {
        "get": lambda _context, key: Ok(config.get(key)),
        "get-all": lambda _context: Ok(config.get_all()),
    }


def _kv_error(exc: KeyValueError) -> Err:
    """A backend's failure as the WIT ``error`` variant, in an ``err``."""
    if exc.kind in ("no-such-store", "access-denied"):
        return Err(Variant(exc.kind))
    return Err(Variant("other", str(exc)))


class _KeyValueBinding:
    """Host side of wasi:keyvalue for one component: bucket handles and calls.

    Bound through the fast trampoline like ``_bind_fast`` (values in the plain
    spelling of ``host.runtime.wasi.values``): a bucket parameter arrives as its
    rep, a new bucket leaves as a ``HostHandle``, results are ``Ok``/``Err``.
    The plain spelling also says which case a result is: through wasmtime-py's
    ``add_func``, ``get`` could not return its ``err`` (in ``result<option<list<u8>>,
    error>`` an option's None matches any value), so a backend failure trapped the
    guest, and ``list-keys`` trapped on every call (its ``key-response`` matched no
    case, not being wasmtime-py's ``Record``).
    """

    def __init__(self, grants: Grants, grant: KeyValueGrant) -> None:
        self.grants = grants
        self.backend = grant.backend
        self.link_config = grant.link_config
        # rep -> backend bucket name; reps are shared by all instances of the component.
        self.handles: dict[int, str] = {}
        self._reps = itertools.count(1)
        self._lock = threading.Lock()

    def _await(self, coro: Coroutine[Any, Any, T]) -> T:
        inline.refuse("a keyvalue call", coro)
        future = asyncio.run_coroutine_threadsafe(coro, self.grants.loop)
        return future.result(HOST_CALL_TIMEOUT_S)

    def _call(self, coro: Coroutine[Any, Any, T]) -> Ok | Err:
        """``Ok(result)`` of a backend call, or its ``KeyValueError`` as ``Err``."""
        try:
            return Ok(self._await(coro))
        except KeyValueError as exc:
            return _kv_error(exc)

    def bind(
        self,
        root: wc.LinkerInstance,
        engine: wasmtime.Engine,
        component: wc.Component,
        imports: list[str],
    ) -> None:
        stores = [name for name in imports if compatible(name, contracts.KEYVALUE_STORE)]
        atomics = [name for name in imports if compatible(name, contracts.KEYVALUE_ATOMICS)]
        if not stores and not atomics:
            return
        # atomics uses store's bucket resource: define store even when only atomics is imported.
        store = stores[0] if stores else contracts.KEYVALUE_STORE
        with root.add_instance(store) as store_iface:
            bucket = wc.ResourceType.host(BUCKET_RESOURCE_TYPE)
            add_fast_resource(store_iface, "bucket", bucket, self._drop)
            if stores:
                _define_fast(store_iface, _imported(engine, component, store), self._store())
        for name in atomics:
            with root.add_instance(name) as atomics_iface:
                functions = _imported(engine, component, name)
                _define_fast(atomics_iface, functions, {"increment": self._increment})

    def _store(self) -> dict[str, Callable[..., Any]]:
        return {
            "open": self._open,
            "[method]bucket.get": self._get,
            "[method]bucket.set": self._set,
            "[method]bucket.delete": self._delete,
            "[method]bucket.exists": self._exists,
            "[method]bucket.list-keys": self._list_keys,
        }

    def _drop(self, _context: int, rep: int) -> None:
        with self._lock:
            self.handles.pop(rep, None)

    def _open(self, _context: int, identifier: str) -> Ok | Err:
        try:
            bucket = resolve_bucket(identifier, self.link_config)
        except KeyValueError as exc:
            return _kv_error(exc)
        with self._lock:
            rep = next(self._reps)
            self.handles[rep] = bucket
        return Ok(HostHandle(rep, BUCKET_RESOURCE_TYPE))

    def _get(self, _context: int, rep: int, key: str) -> Ok | Err:
        return self._call(self.backend.get(self.handles[rep], key))

    def _set(self, _context: int, rep: int, key: str, value: bytes) -> Ok | Err:
        return self._call(self.backend.set(self.handles[rep], key, bytes(value)))

    def _delete(self, _context: int, rep: int, key: str) -> Ok | Err:
        return self._call(self.backend.delete(self.handles[rep], key))

    def _exists(self, _context: int, rep: int, key: str) -> Ok | Err:
        return self._call(self.backend.exists(self.handles[rep], key))

    def _list_keys(self, _context: int, rep: int, cursor: int | None) -> Ok | Err:
        result = self._call(self.backend.keys(self.handles[rep]))
        if isinstance(result, Err):
            return result
        keys: list[str] = result.value
        page = 1000
        start = cursor or 0
        end = start + page
        return Ok(KeyResponse(keys[start:end], end if end < len(keys) else None))

    def _increment(self, _context: int, rep: int, key: str, delta: int) -> Ok | Err:
        return self._call(self.backend.increment(self.handles[rep], key, delta))
