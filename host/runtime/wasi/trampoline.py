"""Host functions and resource destructors registered with the C API directly.

``LinkerInstance.add_func`` converts a host function's arguments and result
through wasmtime-py's types on every call, element by element: a 4 KiB
``list<u8>`` written to an output stream cost ~2.5 ms. This registers the
function with the C API directly and converts with ``host.runtime.lowering``
(the converters ``host.runtime.fastcall`` uses for exports), compiled from the
function's type as the component imports it, with resource handles converted
straight through the C API and values in the plain spelling of
``host.runtime.wasi.values`` (``converter_for(..., host_handles=True)``): the
function gets a handle parameter as its rep and returns plain values, with no
translation layer between it and the C side.

A guest makes a dozen host calls per request, so the per-call overhead counts:
the C callbacks take every pointer as a plain int (ctypes builds no pointer
objects), the function gets the raw store context as its ``store`` (no
``StoreContext``), and no closure is made per call. Each function's first call
compiles its call (``_compile``), shaped to its parameters: values are read and
written in place through ``c_api.MEMORY`` (no views), and a method reads its
handle's rep with no helper call and builds no parameter list. Destructors
(``add_fast_resource``) go the same way.

Ownership: the C API frees the arguments after the call (a lifted handle stays
in its slot and is freed with them); the result slot is filled for the caller,
which frees it. A Python exception is parked where wasmtime-py parks it
(``wasmtime.component._enter``) and re-raised where the guest call returns, as
with wasmtime-py's own host functions.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable
from ctypes import c_char_p, c_size_t, c_uint32, c_void_p
from typing import Any, NoReturn

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component import LinkerInstance, ResourceType, _enter

from host.runtime.c_api import MEMORY, OF, PTR, VAL
from host.runtime.lowering import converter_for, rep_at
from host.runtime.wasi.values import param_reader
from host.runtime.wit_types import WitFunc, WitOpaque, WitType

__all__ = ["add_fast_func", "add_fast_resource"]

Call = Callable[[int, int, int, int], None]  # (context, args, nargs, results)
Read = Callable[[int, int], Any]  # (context, args) -> one parameter's value

_functions: dict[int, Call] = {}
_destructors: dict[int, Callable[[int, int], None]] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


class _HostFunc:
    """One host function before its first call, which compiles its converters.

    A componentize-py component imports ~100 WASI functions and calls a dozen;
    describing and compiling all of them at start cost ~10 ms of every start.
    The first call puts the compiled call (``_compile``) in its place in
    ``_functions``, so later calls go straight to it.
    """

    __slots__ = ("_build", "_key", "_plain")

    def __init__(
        self, key: int, build: Callable[[], tuple[Callable[..., Any], WitFunc]], plain: bool
    ) -> None:
        self._key = key
        self._build = build
        self._plain = plain

    def __call__(self, context: int, args: int, nargs: int, results: int) -> None:
        # Racing threads may both compile: the results are the same.
        call = _compile(*self._build(), self._plain)
        with _lock:
            if self._key in _functions:  # not when the linker is already gone
                _functions[self._key] = call
        call(context, args, nargs, results)


def _compile(impl: Callable[..., Any], func: WitFunc, plain: bool) -> Call:
    """The call of ``impl`` with ``func``'s converters, specialised to its parameters.

    Values are read and written through ``MEMORY`` at their addresses (no views).
    Most calls are methods with at most one more parameter: those read their
    handle's rep in place and build no list of parameters. Every Python call
    saved here is saved a dozen times per request.
    """
    params = [ty for _, ty in func.params]
    lower = None if func.result is None else converter_for(func.result, host_handles=plain).lower
    handle_first = plain and bool(params) and _is_handle(params[0])
    if handle_first and len(params) <= 2:
        return _method(impl, _reader(1, params[1], plain) if len(params) == 2 else None, lower)
    reads = [_reader(i, ty, plain) for i, ty in enumerate(params)]
    if not reads:

        def call0(context: int, args: int, nargs: int, results: int) -> None:
            result = impl(context)
            if lower is not None:
                if results <= 0:
                    _null(results)
                lower(context, result, MEMORY, 1, results - 1)

        return call0
    if len(reads) == 1:
        (read,) = reads

        def call1(context: int, args: int, nargs: int, results: int) -> None:
            if args <= 0:
                _null(args)
            result = impl(context, read(context, args))
            if lower is not None:
                if results <= 0:
                    _null(results)
                lower(context, result, MEMORY, 1, results - 1)

        return call1

    def call(context: int, args: int, nargs: int, results: int) -> None:
        if args <= 0:
            _null(args)
        result = impl(context, *[read(context, args) for read in reads])
        if lower is not None:
            if results <= 0:
                _null(results)
            lower(context, result, MEMORY, 1, results - 1)

    return call


def _method(impl: Callable[..., Any], read: Read | None, lower: Any) -> Call:
    """The call of a function whose first parameter is a handle, and at most one other."""
    unpack, rep_of = PTR.unpack_from, rep_at
    slot = OF - 1  # the first handle's pointer, at args + OF, through MEMORY
    if read is None:

        def call1(context: int, args: int, nargs: int, results: int) -> None:
            if args <= 0:
                _null(args)
            result = impl(context, rep_of(context, unpack(MEMORY, args + slot)[0]))
            if lower is not None:
                if results <= 0:
                    _null(results)
                lower(context, result, MEMORY, 1, results - 1)

        return call1

    def call2(context: int, args: int, nargs: int, results: int) -> None:
        if args <= 0:
            _null(args)
        rep = rep_of(context, unpack(MEMORY, args + slot)[0])
        result = impl(context, rep, read(context, args))
        if lower is not None:
            if results <= 0:
                _null(results)
            lower(context, result, MEMORY, 1, results - 1)

    return call2


def _null(address: int) -> NoReturn:
    # Checked before any use: through MEMORY, address 0 would be its last byte.
    raise ValueError(f"no memory at address {address}")


def _reader(index: int, ty: WitType, plain: bool) -> Read:
    """How parameter ``index`` is read from the argument array.

    A handle (plain spelling) is read as its rep straight from its slot; any
    other value is lifted, then the handles inside it become their reps
    (``values.param_reader``).
    """
    at = index * VAL - 1  # the value at args + index * VAL, through MEMORY
    if plain and _is_handle(ty):
        unpack, rep_of = PTR.unpack_from, rep_at
        slot = at + OF

        def handle(context: int, args: int) -> int:
            return rep_of(context, unpack(MEMORY, args + slot)[0])

        return handle
    lift = converter_for(ty, host_handles=plain).lift
    read = param_reader(ty) if plain else None
    if read is None:
        return lambda context, args: lift(MEMORY, 1, args + at)
    reads_handles = read
    return lambda context, args: reads_handles(context, lift(MEMORY, 1, args + at))


def _is_handle(ty: WitType) -> bool:
    return isinstance(ty, WitOpaque) and ty.is_handle


def _error(exc: Exception) -> int:
    """A ``wasmtime_error_t*`` for the C side, parking a Python exception as wasmtime-py does."""
    if not isinstance(exc, WasmtimeError):
        _enter.LAST_EXCEPTION = exc
        exc = WasmtimeError("python exception")
    return ctypes.cast(exc._consume(), c_void_p).value or 0


def _call(
    env: int | None,
    context: int | None,
    _ty: int | None,
    args: int | None,
    nargs: int,
    results: int | None,
    _n: int,
) -> int:
    try:
        _functions[env or 0](context or 0, args or 0, nargs, results or 0)
    except Exception as exc:
        return _error(exc)
    return 0


def _destroy(env: int | None, context: int | None, rep: int) -> int:
    try:
        _destructors[env or 0](context or 0, rep)
    except Exception as exc:
        return _error(exc)
    return 0


def _forget(env: int | None) -> None:
    key = env or 0
    _functions.pop(key, None)
    _destructors.pop(key, None)


# The C callbacks (kept at module level: C holds on to them for the process), with
# every pointer as c_void_p, and private prototypes of the functions taking them.
_trampoline = ctypes.CFUNCTYPE(
    c_size_t, c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_size_t
)(_call)
_destructor = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_uint32)(_destroy)
_finalize = ctypes.CFUNCTYPE(None, c_void_p)(_forget)
_add_func = ctypes.PYFUNCTYPE(c_void_p, c_void_p, c_char_p, c_size_t, c_void_p, c_void_p, c_void_p)(
    ("wasmtime_component_linker_instance_add_func", ffi.dll)
)
_add_resource = ctypes.PYFUNCTYPE(
    c_void_p, c_void_p, c_char_p, c_size_t, c_void_p, c_void_p, c_void_p, c_void_p
)(("wasmtime_component_linker_instance_add_resource", ffi.dll))


def _address(obj: Any) -> int:
    return ctypes.cast(obj, c_void_p).value or 0


def _register(table: dict[int, Any], make: Callable[[int], Any]) -> int:
    """Store ``make(key)`` under a new key."""
    with _lock:
        key = next(_ids)
        table[key] = make(key)
    return key


def _check(error: int | None, table: dict[int, Any], key: int) -> None:
    if error:
        table.pop(key, None)
        raise WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t)))


def add_fast_func(
    instance: LinkerInstance,
    name: str,
    build: Callable[[], tuple[Callable[..., Any], WitFunc]],
    *,
    plain: bool = True,
) -> None:
    """``instance.add_func(name, impl)``, with ``func``'s values converted fast.

    ``build() -> (impl, func)`` runs on the first call. ``impl(context, *params)``:
    ``context`` is the raw store context (an int); params and result in the plain
    spelling (``host.runtime.wasi.values``), or, with ``plain=False``, in
    wasmtime-py's, as an export call takes and gives them (``host.runtime.fastcall``):
    what a linked component's forwarder hands on unchanged. Resources are then
    not converted: such a function must have none in its type.
    """
    key = _register(_functions, lambda key: _HostFunc(key, build, plain))
    encoded = name.encode("utf-8")
    error = _add_func(
        _address(instance.ptr()),
        encoded,
        len(encoded),
        _address(_trampoline),
        key,
        _address(_finalize),
    )
    _check(error, _functions, key)


def add_fast_resource(
    instance: LinkerInstance, name: str, ty: ResourceType, dtor: Callable[[int, int], None]
) -> None:
    """``instance.add_resource(name, ty, dtor)``; ``dtor(context, rep)``."""
    key = _register(_destructors, lambda _key: dtor)
    encoded = name.encode("utf-8")
    error = _add_resource(
        _address(instance.ptr()),
        encoded,
        len(encoded),
        _address(ty.ptr()),
        _address(_destructor),
        key,
        _address(_finalize),
    )
    _check(error, _destructors, key)
