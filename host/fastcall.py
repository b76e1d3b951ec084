"""Fast calls into component exports: a function's types are compiled once.

``wasmtime.component.Func.__call__`` re-derives the function type on every call
(``Func.type``, ``RecordType.fields``, ``ListType.element``... each building new
ValType objects through the C API) and converts ``list<u8>`` one element at a
time. For the hello HTTP handler that is ~140 of the ~155 us a call takes.
``FastFunc`` reads the type once, compiles it into a tree of converters with
cached field names and children, and moves values through raw memory:

* lowering writes each ``wasmtime_component_val_t`` in place, through a view
  (ctypes array or memoryview) of the memory that will hold it, with struct
  packing and no ctypes objects per value; lifting reads through one;
* ``list<u8>`` moves as ``bytes`` with strided slice copies (bytearray images
  of the 32-byte U8 values, copied to and from C memory in 64 KiB chunks), not
  one conversion per byte.

Memory ownership mirrors wasmtime-py (``wasmtime/component/_types.py``):

* everything the C side frees is allocated by the C side: strings, names and
  flags with ``wasm_byte_vec_new``, lists/tuples/records/flags with
  ``*_new_uninit`` (filled with empty defaults that own nothing, then
  overwritten; a short ``list<u8>`` with ``wasmtime_component_vallist_new``,
  which copies plain U8 values from a Python buffer), variant/option/result
  payloads boxed by ``wasmtime_component_val_new``;
* a lowered value is always a valid value owning everything allocated so far,
  so ``wasmtime_component_val_delete`` on each parameter after the call frees
  the whole tree, also when lowering failed half-way (Func.__call__ does the
  same for the parameters it converted);
* the result is lifted without freeing anything, then freed by one
  ``wasmtime_component_val_delete`` of the root. wasmtime-py frees piecewise
  instead and releases payload boxes with ``val_delete`` rather than
  ``val_free``, which leaks the box of every option/result/variant payload;
  here the root's delete drops the boxes too. Values lifted by wasmtime-py's own
  converters (the fallback, e.g. resources) consume their slot, which is then
  reset to an empty ``bool`` so the root delete skips it, as wasmtime-py does
  for its children.

Values in and out are exactly what wasmtime-py accepts and produces. Kinds not
specialised here (resources, futures, streams, error-context) use the ValType's
own ``convert_to_c``/``convert_from_c``.

The C helpers are called with the GIL held: they only allocate, copy or free.
The call itself releases it, as wasmtime-py's does, since wasm may run long and
host functions need the GIL.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from ctypes import POINTER, addressof, c_char_p, c_int, c_size_t, c_ssize_t, c_ubyte, c_void_p
from typing import Any

import wasmtime
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import component as wc
from wasmtime.component._enter import maybe_raise_last_exn

__all__ = ["FastFunc"]

_Val = ffi.wasmtime_component_val_t


def _offset(struct_type: Any, field: str) -> int:
    offset: int = getattr(struct_type, field).offset
    return offset


# Layout of the C structures, taken from wasmtime-py's ctypes definitions.
_VAL = ctypes.sizeof(_Val)  # one wasmtime_component_val_t
_OF = _offset(_Val, "of")  # the payload union inside it
_ENTRY = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry)  # name + val
_ENTRY_VAL = _offset(ffi.wasmtime_component_valrecord_entry, "val")
_NAME = ctypes.sizeof(ffi.wasm_byte_vec_t)  # one flags name
_RESULT_VAL = _OF + _offset(ffi.wasmtime_component_valresult, "val")
_VARIANT_VAL = _OF + _offset(ffi.wasmtime_component_valvariant, "val")

# Every vec (byte vec, list, tuple, record, flags) is {size_t size; T *data}.
_VEC = struct.Struct("@NP")
_PTR = struct.Struct("@P")
_U32 = struct.Struct("@I")
_F32_BITS = struct.Struct("@f")
_F64_BITS = struct.Struct("@d")

# Scratch memory for one value: a ctypes array is the cheapest zeroed buffer with
# a known address. Fixed-size container contents get array types of their own;
# variable sizes use _view, since ctypes caches an array type per length forever.
_ValImage = c_ubyte * _VAL

_BOOL = ffi.WASMTIME_COMPONENT_BOOL.value
_U8_KIND = ffi.WASMTIME_COMPONENT_U8.value
_CHAR = ffi.WASMTIME_COMPONENT_CHAR.value
_F32_KIND = ffi.WASMTIME_COMPONENT_F32.value
_F64_KIND = ffi.WASMTIME_COMPONENT_F64.value
_STRING = ffi.WASMTIME_COMPONENT_STRING.value
_LIST = ffi.WASMTIME_COMPONENT_LIST.value
_RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
_TUPLE = ffi.WASMTIME_COMPONENT_TUPLE.value
_VARIANT = ffi.WASMTIME_COMPONENT_VARIANT.value
_ENUM = ffi.WASMTIME_COMPONENT_ENUM.value
_OPTION = ffi.WASMTIME_COMPONENT_OPTION.value
_RESULT = ffi.WASMTIME_COMPONENT_RESULT.value
_FLAGS = ffi.WASMTIME_COMPONENT_FLAGS.value


def _c(restype: Any, name: str, *argtypes: Any) -> Any:
    """A private prototype of a libwasmtime function, taking addresses as ints.

    PYFUNCTYPE keeps the GIL: these are short and never call back into Python.
    Private prototypes leave wasmtime-py's own argtypes untouched.
    """
    return ctypes.PYFUNCTYPE(restype, *argtypes)((name, ffi.dll))


_byte_vec_new = _c(None, "wasm_byte_vec_new", c_void_p, c_size_t, c_char_p)
_vallist_new = _c(None, "wasmtime_component_vallist_new", c_void_p, c_size_t, c_void_p)
_vallist_new_uninit = _c(None, "wasmtime_component_vallist_new_uninit", c_void_p, c_size_t)
_valtuple_new_uninit = _c(None, "wasmtime_component_valtuple_new_uninit", c_void_p, c_size_t)
_valrecord_new_uninit = _c(None, "wasmtime_component_valrecord_new_uninit", c_void_p, c_size_t)
_valflags_new_uninit = _c(None, "wasmtime_component_valflags_new_uninit", c_void_p, c_size_t)
_val_new = _c(c_void_p, "wasmtime_component_val_new", c_void_p)
_val_delete = _c(None, "wasmtime_component_val_delete", c_void_p)

# The call releases the GIL (CFUNCTYPE), like wasmtime-py's binding.
_func_call = ctypes.CFUNCTYPE(
    POINTER(ffi.wasmtime_error_t),
    c_void_p,
    POINTER(ffi.wasmtime_context_t),
    c_void_p,
    c_size_t,
    c_void_p,
    c_size_t,
)(("wasmtime_component_func_call", ffi.dll))

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


def _string_of(mv: Any, off: int) -> str:
    size, data = _VEC.unpack_from(mv, off)
    return _string_at(data, size).decode("utf-8") if size else ""


class _Conv:
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


class _Bool(_Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, bool):
            raise TypeError("expected bool for Bool type")
        mv[off + _OF] = 1 if val else 0
        mv[off] = _BOOL

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return mv[off + _OF] != 0


class _Int(_Conv):
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
        self._lowered.pack_into(mv, off + _OF, val & self._mask)
        mv[off] = self._kind

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return self._lifted.unpack_from(mv, off + _OF)[0]


class _F32Conv(_Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, float):
            raise TypeError("expected float for F32 type")
        # Round through c_float as wasmtime-py's ctypes setter does: too large a
        # value becomes inf there, where struct would raise OverflowError.
        _F32_BITS.pack_into(mv, off + _OF, ctypes.c_float(val).value)
        mv[off] = _F32_KIND

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return _F32_BITS.unpack_from(mv, off + _OF)[0]


class _F64Conv(_Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, float):
            raise TypeError("expected float for F64 type")
        _F64_BITS.pack_into(mv, off + _OF, val)
        mv[off] = _F64_KIND

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return _F64_BITS.unpack_from(mv, off + _OF)[0]


class _Char(_Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, str) or len(val) != 1:
            raise TypeError("expected single-character string for Char type")
        _U32.pack_into(mv, off + _OF, ord(val))
        mv[off] = _CHAR

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return chr(_U32.unpack_from(mv, off + _OF)[0])


class _String(_Conv):
    """A string; enums are the same on the wire with another kind."""

    __slots__ = ("_kind", "_message")

    def __init__(self, kind: int = _STRING, message: str = "expected string type") -> None:
        self._kind = kind
        self._message = message

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, str):
            raise TypeError(self._message)
        data = val.encode("utf-8")
        _byte_vec_new(addr + off + _OF, len(data), data)
        mv[off] = self._kind

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return _string_of(mv, off + _OF)


# -- containers ------------------------------------------------------------


def _new_vec(new_uninit: Any, kind: int, n: int, mv: Any, addr: int, off: int) -> int:
    """Allocate an n-element C vec into the value at `off`; returns its data address.

    The C side fills it with empty defaults (bool false, empty names) that own
    nothing, so overwriting them leaks nothing and freeing it early is safe.
    """
    new_uninit(addr + off + _OF, n)
    mv[off] = kind
    data: int = _VEC.unpack_from(mv, off + _OF)[1]
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
    image = bytearray(n * _VAL)
    image[0::_VAL] = _U8_KINDS[:n]
    image[_OF::_VAL] = chunk
    return image


def _image_address(image: bytearray) -> int:
    """The address of a non-empty bytearray's storage.

    The caller must hold `image` while it uses the address (and not resize it).
    """
    return addressof(ctypes.c_char.from_buffer(image))


class _Bytes(_Conv):
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
        _vallist_new(addr + off + _OF, n, _image_address(image))
        mv[off] = _LIST

    @staticmethod
    def _fill(val: bytes, data: int) -> None:
        """Overwrite the empty bools of a C list with U8 values, a chunk at a time."""
        whole = memoryview(val)
        for start in range(0, len(val), _BYTES_CHUNK):
            image = _u8_image(whole[start : start + _BYTES_CHUNK])
            ctypes.memmove(data + start * _VAL, _image_address(image), len(image))

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = _VEC.unpack_from(mv, off + _OF)
        if n <= _BYTES_CHUNK:
            return _string_at(data, n * _VAL)[_OF::_VAL] if n else b""
        chunks = [
            _string_at(data + start * _VAL, min(_BYTES_CHUNK, n - start) * _VAL)[_OF::_VAL]
            for start in range(0, n, _BYTES_CHUNK)
        ]
        return b"".join(chunks)


class _List(_Conv):
    __slots__ = ("_lift", "_lower")

    def __init__(self, element: _Conv) -> None:
        self._lower = element.lower
        self._lift = element.lift

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, list):
            raise TypeError("expected list value")
        n = len(val)
        data = _new_vec(_vallist_new_uninit, _LIST, n, mv, addr, off)
        if n:
            lower, items = self._lower, _view(data, n * _VAL)
            # zip with the offsets: a list growing meanwhile cannot write past the end.
            for o, item in zip(range(0, n * _VAL, _VAL), val, strict=False):
                lower(store, item, items, data, o)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = _VEC.unpack_from(mv, off + _OF)
        if n == 0:
            return []
        lift, items = self._lift, _view(data, n * _VAL)
        return [lift(items, data, o) for o in range(0, n * _VAL, _VAL)]


class _Tuple(_Conv):
    __slots__ = ("_items", "_lifts", "_lowers", "_offsets")

    def __init__(self, elements: list[_Conv]) -> None:
        self._lowers = tuple(e.lower for e in elements)
        self._lifts = tuple(e.lift for e in elements)
        self._offsets = tuple(range(0, len(elements) * _VAL, _VAL))
        self._items = c_ubyte * (len(elements) * _VAL)

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
        n, data = _VEC.unpack_from(mv, off + _OF)
        _check_size(n, len(self._lifts))
        items = self._items.from_address(data)
        pairs = zip(self._lifts, self._offsets, strict=True)
        return tuple([lift(items, data, o) for lift, o in pairs])


class _Record(_Conv):
    """A record as ``wasmtime.component.Record`` with kebab-case attribute names."""

    __slots__ = ("_entries", "_fields", "_lifts", "_n")

    def __init__(self, fields: list[tuple[str, _Conv]]) -> None:
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
            _byte_vec_new(data + o, len(encoded), encoded)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = _VEC.unpack_from(mv, off + _OF)
        _check_size(n, self._n)
        entries = self._entries.from_address(data)
        record = wc.Record()
        # Record has no __setattr__: filling __dict__ is what setattr would do.
        attrs = record.__dict__
        for name, o, lift in self._lifts:
            attrs[name] = lift(entries, data, o)
        return record


class _Flags(_Conv):
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
            _byte_vec_new(data + i * _NAME, len(name), name)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = _VEC.unpack_from(mv, off + _OF)
        if n == 0:
            return set()
        names = _view(data, n * _NAME)
        return {_string_of(names, o) for o in range(0, n * _NAME, _NAME)}


# -- variant, option, result -------------------------------------------------


class _Case:
    """One case of a variant-like type: its name, payload converter, classes."""

    __slots__ = ("classes", "conv", "encoded", "index", "name")

    def __init__(self, index: int, name: str, ty: wc.ValType | None) -> None:
        self.index = index
        self.name = name
        self.encoded = name.encode("utf-8")
        self.conv = None if ty is None else _compile(ty)
        classes: set[type] = set()
        if ty is not None:
            ty.add_classes(classes)
        # The classes an untagged payload must be an instance of.
        self.classes = tuple(classes)


def _tagged(types: list[wc.ValType | None]) -> bool:
    """wasmtime-py's VariantLikeType._tagged: Variant objects iff case classes overlap."""
    seen: set[type] = set()
    for ty in types:
        case: set[type] = set()
        if ty is None:
            case.add(object)
        else:
            ty.add_classes(case)
        if case & seen:
            return True
        seen |= case
    return False


class _Cases(_Conv):
    """Case selection and payload boxing shared by variant, option and result."""

    __slots__ = ("_by_name", "_cases", "_tagged")

    def __init__(self, cases: list[tuple[str, wc.ValType | None]]) -> None:
        self._cases = tuple(_Case(i, name, ty) for i, (name, ty) in enumerate(cases))
        self._by_name = {c.name: c for c in reversed(self._cases)}
        self._tagged = _tagged([ty for _, ty in cases])

    def _select(self, val: Any) -> tuple[_Case, Any]:
        """The case `val` lowers to and its payload, by wasmtime-py's rules."""
        if self._tagged:
            if not isinstance(val, wc.Variant):
                raise TypeError("expected Variant type")
            case = self._by_name.get(val.tag)
            if case is not None:
                return case, val.payload
        else:
            for case in self._cases:
                if case.conv is None:
                    if val is None:
                        return case, None
                elif isinstance(val, case.classes):
                    return case, val
        raise ValueError("value not valid for this variant")

    def _box(self, store: Any, case: _Case, payload: Any) -> int:
        """Lower the payload and move it into a C box (0 for a payload-less case)."""
        if case.conv is None:
            return 0
        image = _ValImage()
        address = addressof(image)
        try:
            case.conv.lower(store, payload, image, address, 0)
        except BaseException:
            _val_delete(address)
            raise
        box: int = _val_new(address)
        return box

    def _lift_case(self, case: _Case, box: int) -> Any:
        if case.conv is None:
            return wc.Variant(case.name) if self._tagged else None
        payload = case.conv.lift(_ValImage.from_address(box), box, 0)
        return wc.Variant(case.name, payload) if self._tagged else payload


class _Variant(_Cases):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        case, payload = self._select(val)
        box = self._box(store, case, payload)
        _byte_vec_new(addr + off + _OF, len(case.encoded), case.encoded)
        _PTR.pack_into(mv, off + _VARIANT_VAL, box)
        mv[off] = _VARIANT

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        tag = _string_of(mv, off + _OF)
        case = self._by_name.get(tag)
        if case is None:
            raise ValueError(f"tag {tag} not found in variant cases")
        return self._lift_case(case, _PTR.unpack_from(mv, off + _VARIANT_VAL)[0])


class _Option(_Cases):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        case, payload = self._select(val)
        _PTR.pack_into(mv, off + _OF, self._box(store, case, payload))
        mv[off] = _OPTION

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        box = _PTR.unpack_from(mv, off + _OF)[0]
        return self._lift_case(self._cases[1 if box else 0], box)


class _Result(_Cases):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        case, payload = self._select(val)
        box = self._box(store, case, payload)
        mv[off + _OF] = 1 if case.index == 0 else 0
        _PTR.pack_into(mv, off + _RESULT_VAL, box)
        mv[off] = _RESULT

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        case = self._cases[0 if mv[off + _OF] else 1]
        return self._lift_case(case, _PTR.unpack_from(mv, off + _RESULT_VAL)[0])


# -- everything else ----------------------------------------------------------


class _Fallback(_Conv):
    """A kind left to wasmtime-py's own converters (resources, futures, ...)."""

    __slots__ = ("_ty",)

    def __init__(self, ty: wc.ValType) -> None:
        self._ty = ty

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        raw = _Val.from_address(addr + off)
        try:
            self._ty.convert_to_c(store, val, ctypes.pointer(raw))
        except BaseException:
            # OwnType sets the kind before taking the handle, so a failure can
            # leave a resource kind without a resource. Nothing was allocated
            # yet; an empty bool keeps the slot valid for the final delete.
            raw.kind = _BOOL
            raw.of.boolean = False
            raise

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        raw = _Val.from_address(addr + off)
        val = self._ty.convert_from_c(raw)
        # convert_from_c consumed the value; an empty bool keeps the root's delete off it.
        raw.kind = _BOOL
        raw.of.boolean = False
        return val


_INTS = {
    wc.S8: (ffi.WASMTIME_COMPONENT_S8, "b", "S8"),
    wc.U8: (ffi.WASMTIME_COMPONENT_U8, "B", "U8"),
    wc.S16: (ffi.WASMTIME_COMPONENT_S16, "h", "S16"),
    wc.U16: (ffi.WASMTIME_COMPONENT_U16, "H", "U16"),
    wc.S32: (ffi.WASMTIME_COMPONENT_S32, "i", "S32"),
    wc.U32: (ffi.WASMTIME_COMPONENT_U32, "I", "U32"),
    wc.S64: (ffi.WASMTIME_COMPONENT_S64, "q", "S64"),
    wc.U64: (ffi.WASMTIME_COMPONENT_U64, "Q", "U64"),
}

_SCALARS: dict[type, Callable[[], _Conv]] = {
    wc.Bool: _Bool,
    wc.F32: _F32Conv,
    wc.F64: _F64Conv,
    wc.Char: _Char,
    wc.String: _String,
    wc.EnumType: lambda: _String(_ENUM, "expected str type"),
    wc.FlagsType: _Flags,
}


def _compile(ty: wc.ValType) -> _Conv:
    """The converter for one wasmtime-py ValType (walks the type once)."""
    kind = type(ty)
    if kind in _INTS:
        return _Int(*_INTS[kind])
    if kind in _SCALARS:
        return _SCALARS[kind]()
    if isinstance(ty, wc.ListType):
        element = ty.element
        return _Bytes() if isinstance(element, wc.U8) else _List(_compile(element))
    if isinstance(ty, wc.RecordType):
        return _Record([(name, _compile(field)) for name, field in ty.fields])
    if isinstance(ty, wc.TupleType):
        return _Tuple([_compile(element) for element in ty.elements])
    try:
        if isinstance(ty, wc.VariantType):
            return _Variant(ty.cases)
        if isinstance(ty, wc.OptionType):
            return _Option([("none", None), ("some", ty.payload)])
        if isinstance(ty, wc.ResultType):
            return _Result([("ok", ty.ok), ("err", ty.err)])
    except NotImplementedError:
        # A payload wasmtime-py cannot classify (error-context): fail at call
        # time, as Func does, rather than when the function is wrapped.
        pass
    return _Fallback(ty)


# -- calls --------------------------------------------------------------------


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
        params = self.type.params
        result = self.type.result
        self._lowers = tuple(_compile(ty).lower for _, ty in params)
        self._nparams = len(params)
        self._offsets = tuple(range(0, len(params) * _VAL, _VAL))
        # At least one slot, so the C side never sees a null parameter array.
        self._params = c_ubyte * (max(len(params), 1) * _VAL)
        self._lift = None if result is None else _compile(result).lift
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
                _val_delete(address + o)

    def _invoke(self, context: Any, params: int) -> Any:
        n = self._nparams
        if self._lift is None:
            error = _func_call(self._func_address, context, params, n, None, 0)
            if error:
                _raise_call_error(error)
            return None
        result = _ValImage()
        address = addressof(result)
        error = _func_call(self._func_address, context, params, n, address, 1)
        if error:
            _raise_call_error(error)
        try:
            return self._lift(result, address, 0)
        finally:
            _val_delete(address)

    def post_return(self, store: Any) -> None:
        self.func.post_return(store)
