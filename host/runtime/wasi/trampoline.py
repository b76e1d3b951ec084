"""Host functions whose values convert with converters compiled once.

``LinkerInstance.add_func`` converts a host function's arguments and result
through wasmtime-py's types on every call, element by element: a 4 KiB
``list<u8>`` written to an output stream cost ~2.5 ms. This registers the
function with the C API directly and converts with ``host.runtime.lowering``
(the converters ``host.runtime.fastcall`` uses for exports), compiled from the
function's type as the component imports it.

Ownership: the C API frees the arguments after the call (lifting a resource
takes its handle out of the slot, as ``lowering._Native`` does); the result
slot is filled for the caller, which frees it.
A Python exception is parked by ``catch_exceptions`` and re-raised where the
guest call returns, as with wasmtime-py's own host functions.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component import LinkerInstance
from wasmtime.component._enter import catch_exceptions

from host.runtime.c_api import VAL, view
from host.runtime.lowering import converter_for
from host.runtime.wit_types import WitFunc

__all__ = ["add_fast_func"]

_functions: dict[int, _HostFunc] = {}
_ids = itertools.count(1)
_lock = threading.Lock()


class _HostFunc:
    __slots__ = ("_impl", "_lifts", "_lower")

    def __init__(self, impl: Callable[..., Any], func: WitFunc) -> None:
        self._impl = impl
        self._lifts = tuple(converter_for(ty).lift for _, ty in func.params)
        self._lower = None if func.result is None else converter_for(func.result).lower

    def __call__(self, store: Any, args: int, nargs: int, results: int) -> None:
        values = []
        if nargs:
            mv = view(args, nargs * VAL)
            for i, lift in enumerate(self._lifts):
                values.append(lift(mv, args, i * VAL))
        result = self._impl(store, *values)
        if self._lower is not None:
            self._lower(store, result, view(results, VAL), results, 0)


def _call(
    env: int | None, context: Any, _ty: Any, args: Any, nargs: int, results: Any, _n: int
) -> Any:
    host = _functions[env or 0]
    args_at = ctypes.cast(args, ctypes.c_void_p).value or 0
    results_at = ctypes.cast(results, ctypes.c_void_p).value or 0
    return catch_exceptions(context, lambda store: host(store, args_at, nargs, results_at))


def _forget(env: int | None) -> None:
    _functions.pop(env or 0, None)


# The C callbacks (kept at module level: C holds on to them for the process).
_trampoline = ffi.wasmtime_component_func_callback_t(_call)
_finalize = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_forget)


def add_fast_func(
    instance: LinkerInstance, name: str, impl: Callable[..., Any], func: WitFunc
) -> None:
    """``instance.add_func(name, impl)``, with ``func``'s values converted fast."""
    with _lock:
        key = next(_ids)
        _functions[key] = _HostFunc(impl, func)
    encoded = name.encode("utf-8")
    error = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(),
        ctypes.create_string_buffer(encoded),
        len(encoded),
        _trampoline,
        key,
        _finalize,
    )
    if error:
        _functions.pop(key, None)
        raise WasmtimeError._from_ptr(error)
