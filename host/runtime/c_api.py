"""The part of libwasmtime's component C API that fast calls use directly.

``host.runtime.lowering`` writes and reads ``wasmtime_component_val_t`` values
in raw memory, and ``host.runtime.fastcall`` calls a function with them. This
module holds what both need of the C side: the layout of the value structures
(sizes and offsets, taken from wasmtime-py's ctypes definitions), the kind
numbers, ``struct`` formats to pack fields with, and private prototypes of the
C functions that allocate, free and call.

Everything the C side frees is allocated by the C side, as in wasmtime-py
(``wasmtime/component/_types.py``): strings, names and flags with
``wasm_byte_vec_new``, lists, tuples, records and flags with ``*_new_uninit``
(filled with empty defaults that own nothing), payload boxes with
``wasmtime_component_val_new``. One ``wasmtime_component_val_delete`` frees a
value and all it owns.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from ctypes import (
    POINTER,
    c_bool,
    c_char_p,
    c_size_t,
    c_ubyte,
    c_uint32,
    c_void_p,
)
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi

Val = ffi.wasmtime_component_val_t


def _offset(struct_type: Any, name: str) -> int:
    offset: int = getattr(struct_type, name).offset
    return offset


# -- layout ----------------------------------------------------------------------

VAL = ctypes.sizeof(Val)  # one wasmtime_component_val_t: the kind byte, then the payload
OF = _offset(Val, "of")  # the payload union inside it
ENTRY = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry)  # a record field: name + val
ENTRY_VAL = _offset(ffi.wasmtime_component_valrecord_entry, "val")
NAME = ctypes.sizeof(ffi.wasm_byte_vec_t)  # one flags name
RESULT_VAL = OF + _offset(ffi.wasmtime_component_valresult, "val")  # after is_ok
VARIANT_VAL = OF + _offset(ffi.wasmtime_component_valvariant, "val")  # after the tag

# Every vec (byte vec, list, tuple, record, flags) is {size_t size; T *data}.
VEC = struct.Struct("@NP")
PTR = struct.Struct("@P")
U32 = struct.Struct("@I")
F32_BITS = struct.Struct("@f")
F64_BITS = struct.Struct("@d")

# Scratch memory for one value: a ctypes array is the cheapest zeroed buffer with
# a known address; all zeroes is an empty bool, which owns nothing. Container
# contents are read and written through MEMORY (below).
ValImage = c_ubyte * VAL

# -- kinds -----------------------------------------------------------------------

BOOL = ffi.WASMTIME_COMPONENT_BOOL.value
U8 = ffi.WASMTIME_COMPONENT_U8.value
CHAR = ffi.WASMTIME_COMPONENT_CHAR.value
F32 = ffi.WASMTIME_COMPONENT_F32.value
F64 = ffi.WASMTIME_COMPONENT_F64.value
STRING = ffi.WASMTIME_COMPONENT_STRING.value
LIST = ffi.WASMTIME_COMPONENT_LIST.value
RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
TUPLE = ffi.WASMTIME_COMPONENT_TUPLE.value
VARIANT = ffi.WASMTIME_COMPONENT_VARIANT.value
ENUM = ffi.WASMTIME_COMPONENT_ENUM.value
OPTION = ffi.WASMTIME_COMPONENT_OPTION.value
RESULT = ffi.WASMTIME_COMPONENT_RESULT.value
FLAGS = ffi.WASMTIME_COMPONENT_FLAGS.value
RESOURCE = ffi.WASMTIME_COMPONENT_RESOURCE.value
# The integer kinds by WIT name, with their struct format (lower case: signed).
INTEGERS: dict[str, tuple[int, str]] = {
    "s8": (ffi.WASMTIME_COMPONENT_S8.value, "b"),
    "u8": (U8, "B"),
    "s16": (ffi.WASMTIME_COMPONENT_S16.value, "h"),
    "u16": (ffi.WASMTIME_COMPONENT_U16.value, "H"),
    "s32": (ffi.WASMTIME_COMPONENT_S32.value, "i"),
    "u32": (ffi.WASMTIME_COMPONENT_U32.value, "I"),
    "s64": (ffi.WASMTIME_COMPONENT_S64.value, "q"),
    "u64": (ffi.WASMTIME_COMPONENT_U64.value, "Q"),
}

# -- functions -------------------------------------------------------------------


def _c(restype: Any, name: str, *argtypes: Any) -> Any:
    """A private prototype of a libwasmtime function, taking addresses as ints.

    PYFUNCTYPE keeps the GIL: these are short and never call back into Python.
    Private prototypes leave wasmtime-py's own argtypes untouched.
    """
    return ctypes.PYFUNCTYPE(restype, *argtypes)((name, ffi.dll))


byte_vec_new = _c(None, "wasm_byte_vec_new", c_void_p, c_size_t, c_char_p)
vallist_new = _c(None, "wasmtime_component_vallist_new", c_void_p, c_size_t, c_void_p)
vallist_new_uninit = _c(None, "wasmtime_component_vallist_new_uninit", c_void_p, c_size_t)
valtuple_new_uninit = _c(None, "wasmtime_component_valtuple_new_uninit", c_void_p, c_size_t)
valrecord_new_uninit = _c(None, "wasmtime_component_valrecord_new_uninit", c_void_p, c_size_t)
valflags_new_uninit = _c(None, "wasmtime_component_valflags_new_uninit", c_void_p, c_size_t)
val_new = _c(c_void_p, "wasmtime_component_val_new", c_void_p)
val_delete = _c(None, "wasmtime_component_val_delete", c_void_p)
# A deep copy into C allocations (src, dst): host.runtime.imaging's values built in
# Python memory become C-owned with it.
val_clone = _c(None, "wasmtime_component_val_clone", c_void_p, c_void_p)
# Host-defined resources, converted without wasmtime-py's ResourceAny/ResourceHost
# objects (host.runtime.lowering's host handles). The errors are wasmtime_error_t*.
resource_any_to_host = _c(
    c_void_p, "wasmtime_component_resource_any_to_host", c_void_p, c_void_p, c_void_p
)
resource_host_new = _c(c_void_p, "wasmtime_component_resource_host_new", c_bool, c_uint32, c_uint32)
resource_host_rep = _c(c_uint32, "wasmtime_component_resource_host_rep", c_void_p)
resource_host_to_any = _c(
    c_void_p, "wasmtime_component_resource_host_to_any", c_void_p, c_void_p, c_void_p
)
resource_host_delete = _c(None, "wasmtime_component_resource_host_delete", c_void_p)

# Sets a store's epoch deadline: a field write. wasmtime-py's binding releases and
# retakes the GIL around it, and on a worker thread retaking it means waiting for
# the event loop to let go (measured: ~4 % of a loaded host's samples).
set_epoch_deadline = _c(None, "wasmtime_context_set_epoch_deadline", c_void_p, ctypes.c_uint64)

# The call releases the GIL (CFUNCTYPE), like wasmtime-py's binding: wasm may run
# long, and host functions take the GIL back.
func_call = ctypes.CFUNCTYPE(
    POINTER(ffi.wasmtime_error_t),
    c_void_p,
    POINTER(ffi.wasmtime_context_t),
    c_void_p,
    c_size_t,
    c_void_p,
    c_size_t,
)(("wasmtime_component_func_call", ffi.dll))

# -- reading raw memory ------------------------------------------------------------

# The process's memory as one memoryview, from address 1 up: a slice of it is a view
# of C memory made without a ctypes call (PyMemoryView_FromMemory through ctypes cost
# ~0.6 µs, and a wasi:http request makes ~30 views). Nothing is allocated: the array
# type only describes the address range.
#
# A converter (``host.runtime.lowering``) writes and reads the value at ``off`` of a
# buffer whose first byte is at ``addr``: ``(MEMORY, 1, address - 1)`` is the value
# at ``address`` with no view made at all, which the per-call paths use.
MEMORY = memoryview((ctypes.c_ubyte * (sys.maxsize - 1)).from_address(1)).cast("B")


def view(address: int, size: int) -> memoryview:
    """A writable memoryview of `size` bytes of C memory at `address`."""
    if address <= 0:
        raise ValueError(f"no memory at address {address}")
    return MEMORY[address - 1 : address - 1 + size]


def string_at(address: int, size: int) -> bytes:
    """A copy of `size` bytes of C memory at `address`."""
    return view(address, size).tobytes()


def raise_error(error: int) -> None:
    """Raise the ``wasmtime_error_t*`` a C function returned (it is consumed)."""
    raise WasmtimeError._from_ptr(ctypes.cast(error, POINTER(ffi.wasmtime_error_t)))


def string_of(mv: Any, off: int) -> str:
    """The UTF-8 byte vec at offset `off` of `mv`, decoded."""
    size, data = VEC.unpack_from(mv, off)
    # Decoded from the C memory in place (no bytes copy first).
    return str(MEMORY[data - 1 : data - 1 + size], "utf-8") if size else ""
