"""Fast calls into component exports: a function's types are compiled once.

``wasmtime.component.Func.__call__`` re-derives the function type on every call
and converts values by walking it through the C API; for the hello HTTP handler
that was ~140 of the ~155 us a call took. ``FastFunc`` reads the type once
(``host.runtime.wit_types.describe_func``), compiles each parameter and the
result into converters (``host.runtime.lowering``), and makes the call itself:
lower the arguments into one C array, call, lift the result, free both.

Values in and out, and the errors for bad values, are exactly wasmtime-py's.
A lowered argument is always a valid value owning everything allocated so far,
so ``wasmtime_component_val_delete`` on each parameter after the call frees it,
also when lowering failed half-way (``Func.__call__`` does the same for the
parameters it converted); the result is deleted once it is lifted.

The call releases the GIL, as wasmtime-py's does, since wasm may run long and
host functions need the GIL.
"""

from __future__ import annotations

from ctypes import addressof, c_ubyte
from typing import Any

import wasmtime
from wasmtime import WasmtimeError
from wasmtime import component as wc
from wasmtime.component._enter import maybe_raise_last_exn

from host.runtime.c_api import VAL, ValImage, func_call, val_delete
from host.runtime.imaging import image_lowerer
from host.runtime.lowering import converter_for
from host.runtime.wit_types import describe_func

__all__ = ["FastFunc"]


def _raise_call_error(error: Any) -> None:
    """What wasmtime-py's enter_wasm does with an error from the C API.

    A Python exception raised by a host function was parked by the host-call
    trampoline; it is re-raised in place of the generic wasmtime error.
    """
    exc = WasmtimeError._from_ptr(error)
    maybe_raise_last_exn()
    raise exc


class FastFunc:
    """A component export with its types compiled once; a drop-in for ``Func``.

    ``FastFunc(func, store)(store, *params)`` takes and returns the same values
    as ``func(store, *params)``. Keep one per (instance, export), as with
    ``Func``; it holds no per-call state, so calls from several threads are as
    safe as they are with ``Func`` (i.e. the store must not be shared).
    """

    __slots__ = (
        "_func",
        "_func_address",
        "_lift",
        "_lowers",
        "_nparams",
        "_offsets",
        "_params",
        "func",
        "type",
    )

    def __init__(self, func: wc.Func, store: wasmtime.Store) -> None:
        self.func = func
        self.type = func.type(store)
        described = describe_func(self.type)
        params = described.params
        self._lowers = tuple(image_lowerer(ty, converter_for(ty).lower) for _, ty in params)
        self._nparams = len(params)
        self._offsets = tuple(range(0, len(params) * VAL, VAL))
        # At least one slot, so the C side never sees a null parameter array.
        self._params = c_ubyte * (max(len(params), 1) * VAL)
        result = described.result
        self._lift = None if result is None else converter_for(result).lift
        # Func keeps the raw wasmtime_component_func_t alive; `func` keeps Func alive.
        self._func = func._func
        self._func_address = addressof(func._func)

    def __call__(self, store: Any, *params: Any) -> Any:
        n = self._nparams
        if len(params) != n:
            raise TypeError(
                f"wrong number of parameters provided: given {len(params)}, expected {n}"
            )
        context = store._context()
        image = self._params()
        address = addressof(image)
        try:
            for lower, o, param in zip(self._lowers, self._offsets, params, strict=True):
                lower(store, param, image, address, o)
            return self._invoke(context, address)
        finally:
            # Unused slots are zeroes, an empty bool: deleting them is a no-op.
            for o in self._offsets:
                val_delete(address + o)

    def _invoke(self, context: Any, params: int) -> Any:
        n = self._nparams
        if self._lift is None:
            error = func_call(self._func_address, context, params, n, None, 0)
            if error:
                _raise_call_error(error)
            return None
        result = ValImage()
        address = addressof(result)
        error = func_call(self._func_address, context, params, n, address, 1)
        if error:
            _raise_call_error(error)
        try:
            return self._lift(result, address, 0)
        finally:
            val_delete(address)
