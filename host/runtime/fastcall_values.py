"""wasmtime component values in raw memory: converters per kind, and the C layout.

``host.runtime.fastcall`` compiles a function's types once into a tree of converters
(``Conv``). The ones here need nothing of a wasmtime-py type but their compiled
children: scalars, strings, enums and flags, and ``list``, ``tuple`` and
``record``. Walking the types is ``host.runtime.fastcall``'s job, and so are the
converters that need more of a type: variant, option and result (their cases
follow wasmtime-py's class rules) and the fallback to wasmtime-py's own. Both
modules use the C layout and the libwasmtime prototypes defined here.

Values move through raw memory:

* lowering writes each ``wasmtime_component_val_t`` in place, through a view
  (ctypes array or memoryview) of the memory that will hold it, with struct
  packing and no ctypes objects per value; lifting reads through one;
* ``list<u8>`` moves as ``bytes`` with strided slice copies (bytearray images
  of the 32-byte U8 values, copied to and from C memory in 64 KiB chunks), not
  one conversion per byte.

Everything the C side frees is allocated by the C side, as in wasmtime-py
(``wasmtime/component/_types.py``): strings, names and flags with
``wasm_byte_vec_new``, lists/tuples/records/flags with ``*_new_uninit``
(filled with empty defaults that own nothing, then overwritten; a short
``list<u8>`` with ``wasmtime_component_vallist_new``, which copies plain U8
values from a Python buffer). So a lowered value is always a valid value owning
everything allocated so far, and one ``wasmtime_component_val_delete`` frees it,
also when lowering failed half-way; lifting frees nothing.

The C helpers are called with the GIL held: they only allocate, copy or free.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from ctypes import addressof, c_char_p, c_int, c_size_t, c_ssize_t, c_ubyte, c_void_p
from functools import partial
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime import component as wc

__all__ = [
    "BOOL_KIND",
    "OF",
    "OPTION_KIND",
    "PTR",
    "RESULT_KIND",
    "RESULT_VAL",
    "SCALARS",
    "VAL",
    "VARIANT_KIND",
    "VARIANT_VAL",
    "BytesConv",
    "Conv",
    "ListConv",
    "RecordConv",
    "TupleConv",
    "Val",
    "ValImage",
    "byte_vec_new",
    "string_of",
    "val_delete",
    "val_new",
]

Val = ffi.wasmtime_component_val_t


def _offset(struct_type: Any, field: str) -> int:
    offset: int = getattr(struct_type, field).offset
    return offset


# Layout of the C structures, taken from wasmtime-py's ctypes definitions.
VAL = ctypes.sizeof(Val)  # one wasmtime_component_val_t
OF = _offset(Val, "of")  # the payload union inside it
_ENTRY = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry)  # name + val
_ENTRY_VAL = _offset(ffi.wasmtime_component_valrecord_entry, "val")
_NAME = ctypes.sizeof(ffi.wasm_byte_vec_t)  # one flags name
RESULT_VAL = OF + _offset(ffi.wasmtime_component_valresult, "val")
VARIANT_VAL = OF + _offset(ffi.wasmtime_component_valvariant, "val")

# Every vec (byte vec, list, tuple, record, flags) is {size_t size; T *data}.
_VEC = struct.Struct("@NP")
PTR = struct.Struct("@P")
_U32 = struct.Struct("@I")
_F32_BITS = struct.Struct("@f")
_F64_BITS = struct.Struct("@d")

# Scratch memory for one value: a ctypes array is the cheapest zeroed buffer with
# a known address. Fixed-size container contents get array types of their own;
# variable sizes use _view, since ctypes caches an array type per length forever.
ValImage = c_ubyte * VAL

BOOL_KIND = ffi.WASMTIME_COMPONENT_BOOL.value
_U8_KIND = ffi.WASMTIME_COMPONENT_U8.value
_CHAR = ffi.WASMTIME_COMPONENT_CHAR.value
_F32_KIND = ffi.WASMTIME_COMPONENT_F32.value
_F64_KIND = ffi.WASMTIME_COMPONENT_F64.value
_STRING = ffi.WASMTIME_COMPONENT_STRING.value
_LIST = ffi.WASMTIME_COMPONENT_LIST.value
_RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
_TUPLE = ffi.WASMTIME_COMPONENT_TUPLE.value
VARIANT_KIND = ffi.WASMTIME_COMPONENT_VARIANT.value
_ENUM = ffi.WASMTIME_COMPONENT_ENUM.value
OPTION_KIND = ffi.WASMTIME_COMPONENT_OPTION.value
RESULT_KIND = ffi.WASMTIME_COMPONENT_RESULT.value
_FLAGS = ffi.WASMTIME_COMPONENT_FLAGS.value


def _c(restype: Any, name: str, *argtypes: Any) -> Any:
    """A private prototype of a libwasmtime function, taking addresses as ints.

    PYFUNCTYPE keeps the GIL: these are short and never call back into Python.
    Private prototypes leave wasmtime-py's own argtypes untouched.
    """
    return ctypes.PYFUNCTYPE(restype, *argtypes)((name, ffi.dll))


byte_vec_new = _c(None, "wasm_byte_vec_new", c_void_p, c_size_t, c_char_p)
_vallist_new = _c(None, "wasmtime_component_vallist_new", c_void_p, c_size_t, c_void_p)
_vallist_new_uninit = _c(None, "wasmtime_component_vallist_new_uninit", c_void_p, c_size_t)
_valtuple_new_uninit = _c(None, "wasmtime_component_valtuple_new_uninit", c_void_p, c_size_t)
_valrecord_new_uninit = _c(None, "wasmtime_component_valrecord_new_uninit", c_void_p, c_size_t)
_valflags_new_uninit = _c(None, "wasmtime_component_valflags_new_uninit", c_void_p, c_size_t)
val_new = _c(c_void_p, "wasmtime_component_val_new", c_void_p)
val_delete = _c(None, "wasmtime_component_val_delete", c_void_p)

# A memoryview over raw memory, without the per-length ctypes array types that
# `(c_char * n).from_address` would create and cache forever.
_from_memory = ctypes.PYFUNCTYPE(ctypes.py_object, c_void_p, c_ssize_t, c_int)(
    ("PyMemoryView_FromMemory", ctypes.pythonapi)
)
_PYBUF_WRITE = 0x200
_string_at = ctypes.string_at


def _view(address: int, size: int) -> memoryview:
    view: memoryview = _from_memory(address, size, _PYBUF_WRITE)
    return view


def string_of(mv: Any, off: int) -> str:
    size, data = _VEC.unpack_from(mv, off)
    return _string_at(data, size).decode("utf-8") if size else ""


class Conv:
    """Lowers Python values to wasmtime_component_val_t and lifts them back.

    ``lower`` writes one value at offset ``off`` of ``mv``, a writable buffer
    (ctypes array or memoryview) whose first byte is at address ``addr``: C
    calls need the address, Python writes go through the buffer. ``lift`` reads
    the value there.
    """

    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        raise NotImplementedError

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        raise NotImplementedError


# -- scalars ---------------------------------------------------------------


class _Bool(Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, bool):
            raise TypeError("expected bool for Bool type")
        mv[off + OF] = 1 if val else 0
        mv[off] = BOOL_KIND

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return mv[off + OF] != 0


class _Int(Conv):
    """An integer kind. Out-of-range values wrap, as ctypes' field setters do."""

    __slots__ = ("_kind", "_lifted", "_lowered", "_mask", "_message")

    def __init__(self, kind: Any, signed: str, name: str) -> None:
        self._kind = kind.value
        self._lifted = struct.Struct("@" + signed)
        self._lowered = struct.Struct("@" + signed.upper())
        self._mask = (1 << (8 * self._lowered.size)) - 1
        self._message = f"expected int for {name} type"

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, int):
            raise TypeError(self._message)
        self._lowered.pack_into(mv, off + OF, val & self._mask)
        mv[off] = self._kind

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return self._lifted.unpack_from(mv, off + OF)[0]


class _F32Conv(Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, float):
            raise TypeError("expected float for F32 type")
        # Round through c_float as wasmtime-py's ctypes setter does: too large a
        # value becomes inf there, where struct would raise OverflowError.
        _F32_BITS.pack_into(mv, off + OF, ctypes.c_float(val).value)
        mv[off] = _F32_KIND

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return _F32_BITS.unpack_from(mv, off + OF)[0]


class _F64Conv(Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, float):
            raise TypeError("expected float for F64 type")
        _F64_BITS.pack_into(mv, off + OF, val)
        mv[off] = _F64_KIND

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return _F64_BITS.unpack_from(mv, off + OF)[0]


class _Char(Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, str) or len(val) != 1:
            raise TypeError("expected single-character string for Char type")
        _U32.pack_into(mv, off + OF, ord(val))
        mv[off] = _CHAR

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return chr(_U32.unpack_from(mv, off + OF)[0])


class _String(Conv):
    """A string; enums are the same on the wire with another kind."""

    __slots__ = ("_kind", "_message")

    def __init__(self, kind: int = _STRING, message: str = "expected string type") -> None:
        self._kind = kind
        self._message = message

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, str):
            raise TypeError(self._message)
        data = val.encode("utf-8")
        byte_vec_new(addr + off + OF, len(data), data)
        mv[off] = self._kind

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return string_of(mv, off + OF)


# -- containers ------------------------------------------------------------


def _new_vec(new_uninit: Any, kind: int, n: int, mv: Any, addr: int, off: int) -> int:
    """Allocate an n-element C vec into the value at `off`; returns its data address.

    The C side fills it with empty defaults (bool false, empty names) that own
    nothing, so overwriting them leaks nothing and freeing it early is safe.
    """
    new_uninit(addr + off + OF, n)
    mv[off] = kind
    data: int = _VEC.unpack_from(mv, off + OF)[1]
    return data


def _check_size(got: int, expected: int) -> None:
    # The C value follows the function type, so this never fires; it guards the
    # fixed-size reads that follow against reading past the allocation.
    if got != expected:
        raise ValueError(f"expected {expected} fields from wasmtime, got {got}")


# list<u8> is one 32-byte U8 value per byte. The values are built in Python
# images of at most this many (64 KiB: malloc'd, where a bigger buffer would be
# fresh mmap'd pages, which cost more to fault in than the copying saves), with
# bytearray's strided slice copies, then copied to the C side a chunk at a time.
_BYTES_CHUNK = 2048
_U8_KINDS = bytes((_U8_KIND,)) * _BYTES_CHUNK


def _u8_image(chunk: Any) -> bytearray:
    """The U8 values for the bytes in `chunk` (at most _BYTES_CHUNK of them)."""
    n = len(chunk)
    image = bytearray(n * VAL)
    image[0::VAL] = _U8_KINDS[:n]
    image[OF::VAL] = chunk
    return image


def _image_address(image: bytearray) -> int:
    """The address of a non-empty bytearray's storage.

    The caller must hold `image` while it uses the address (and not resize it).
    """
    return addressof(ctypes.c_char.from_buffer(image))


class BytesConv(Conv):
    """``list<u8>`` as ``bytes``, copied with strided slices, not element by element."""

    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, bytes):
            raise TypeError("expected bytes value")
        n = len(val)
        if n == 0 or n > _BYTES_CHUNK:
            data = _new_vec(_vallist_new_uninit, _LIST, n, mv, addr, off)
            self._fill(val, data)
            return
        image = _u8_image(val)  # a local: the address below is only valid while it lives
        # vallist_new copies the values (plain data) into a C allocation.
        _vallist_new(addr + off + OF, n, _image_address(image))
        mv[off] = _LIST

    @staticmethod
    def _fill(val: bytes, data: int) -> None:
        """Overwrite the empty bools of a C list with U8 values, a chunk at a time."""
        whole = memoryview(val)
        for start in range(0, len(val), _BYTES_CHUNK):
            image = _u8_image(whole[start : start + _BYTES_CHUNK])
            ctypes.memmove(data + start * VAL, _image_address(image), len(image))

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = _VEC.unpack_from(mv, off + OF)
        if n <= _BYTES_CHUNK:
            return _string_at(data, n * VAL)[OF::VAL] if n else b""
        chunks = [
            _string_at(data + start * VAL, min(_BYTES_CHUNK, n - start) * VAL)[OF::VAL]
            for start in range(0, n, _BYTES_CHUNK)
        ]
        return b"".join(chunks)


class ListConv(Conv):
    __slots__ = ("_lift", "_lower")

    def __init__(self, element: Conv) -> None:
        self._lower = element.lower
        self._lift = element.lift

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, list):
            raise TypeError("expected list value")
        n = len(val)
        data = _new_vec(_vallist_new_uninit, _LIST, n, mv, addr, off)
        if n:
            lower, items = self._lower, _view(data, n * VAL)
            # zip with the offsets: a list growing meanwhile cannot write past the end.
            for o, item in zip(range(0, n * VAL, VAL), val, strict=False):
                lower(store, item, items, data, o)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = _VEC.unpack_from(mv, off + OF)
        if n == 0:
            return []
        lift, items = self._lift, _view(data, n * VAL)
        return [lift(items, data, o) for o in range(0, n * VAL, VAL)]


class TupleConv(Conv):
    __slots__ = ("_items", "_lifts", "_lowers", "_offsets")

    def __init__(self, elements: list[Conv]) -> None:
        self._lowers = tuple(e.lower for e in elements)
        self._lifts = tuple(e.lift for e in elements)
        self._offsets = tuple(range(0, len(elements) * VAL, VAL))
        self._items = c_ubyte * (len(elements) * VAL)

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, tuple):
            raise TypeError("expected tuple type")
        n = len(self._lowers)
        if len(val) != n:
            raise TypeError("tuple length mismatch")
        data = _new_vec(_valtuple_new_uninit, _TUPLE, n, mv, addr, off)
        items = self._items.from_address(data)
        for lower, o, item in zip(self._lowers, self._offsets, val, strict=True):
            lower(store, item, items, data, o)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = _VEC.unpack_from(mv, off + OF)
        _check_size(n, len(self._lifts))
        items = self._items.from_address(data)
        pairs = zip(self._lifts, self._offsets, strict=True)
        return tuple([lift(items, data, o) for lift, o in pairs])


class RecordConv(Conv):
    """A record as ``wasmtime.component.Record`` with kebab-case attribute names."""

    __slots__ = ("_entries", "_fields", "_lifts", "_n")

    def __init__(self, fields: list[tuple[str, Conv]]) -> None:
        self._n = len(fields)
        self._entries = c_ubyte * (self._n * _ENTRY)
        # (name, encoded name, entry offset, lower) per field, in type order.
        self._fields = tuple(
            (name, name.encode("utf-8"), i * _ENTRY, conv.lower)
            for i, (name, conv) in enumerate(fields)
        )
        self._lifts = tuple(
            (name, i * _ENTRY + _ENTRY_VAL, conv.lift) for i, (name, conv) in enumerate(fields)
        )

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        n = self._n
        data = _new_vec(_valrecord_new_uninit, _RECORD, n, mv, addr, off)
        entries = self._entries.from_address(data)
        for name, encoded, o, lower in self._fields:
            lower(store, getattr(val, name), entries, data, o + _ENTRY_VAL)
            # The C side frees every entry's name with the record.
            byte_vec_new(data + o, len(encoded), encoded)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = _VEC.unpack_from(mv, off + OF)
        _check_size(n, self._n)
        entries = self._entries.from_address(data)
        record = wc.Record()
        # Record has no __setattr__: filling __dict__ is what setattr would do.
        attrs = record.__dict__
        for name, o, lift in self._lifts:
            attrs[name] = lift(entries, data, o)
        return record


class _Flags(Conv):
    """Flags as a set of names, in the set's iteration order (as wasmtime-py)."""

    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, set):
            raise TypeError("expected set type for Flags type")
        if not all(isinstance(s, str) for s in val):
            raise TypeError("expected set of strings for Flags type")
        names = [s.encode("utf-8") for s in val]
        data = _new_vec(_valflags_new_uninit, _FLAGS, len(names), mv, addr, off)
        for i, name in enumerate(names):
            byte_vec_new(data + i * _NAME, len(name), name)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = _VEC.unpack_from(mv, off + OF)
        if n == 0:
            return set()
        names = _view(data, n * _NAME)
        return {string_of(names, o) for o in range(0, n * _NAME, _NAME)}


# The converters of the kinds without children, by wasmtime-py type class.
SCALARS: dict[type, Callable[[], Conv]] = {
    wc.Bool: _Bool,
    wc.S8: partial(_Int, ffi.WASMTIME_COMPONENT_S8, "b", "S8"),
    wc.U8: partial(_Int, ffi.WASMTIME_COMPONENT_U8, "B", "U8"),
    wc.S16: partial(_Int, ffi.WASMTIME_COMPONENT_S16, "h", "S16"),
    wc.U16: partial(_Int, ffi.WASMTIME_COMPONENT_U16, "H", "U16"),
    wc.S32: partial(_Int, ffi.WASMTIME_COMPONENT_S32, "i", "S32"),
    wc.U32: partial(_Int, ffi.WASMTIME_COMPONENT_U32, "I", "U32"),
    wc.S64: partial(_Int, ffi.WASMTIME_COMPONENT_S64, "q", "S64"),
    wc.U64: partial(_Int, ffi.WASMTIME_COMPONENT_U64, "Q", "U64"),
    wc.F32: _F32Conv,
    wc.F64: _F64Conv,
    wc.Char: _Char,
    wc.String: _String,
    wc.EnumType: lambda: _String(_ENUM, "expected str type"),
    wc.FlagsType: _Flags,
}
