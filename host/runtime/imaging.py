"""Plain values lowered as one image in Python memory, copied by one C call.

``host.runtime.lowering`` builds a value in C allocations, one C call per
string, list, tuple and record (and per record field's name): lowering the
own-contract HTTP request took ~20 ctypes calls, ~0.35 µs each. A value made
only of *plain data* (booleans, numbers, chars, strings, enums, flags, lists,
tuples, records: no options, results, variants or resources) needs no C
allocation to be written: here its whole tree is written into an arena, a
Python-owned buffer, with pointers between its parts, and
``wasmtime_component_val_clone`` (a deep copy) makes the C-owned value the call
takes. The C side frees the copy; the arena is reused.

Everything the arena holds is written before the copy reads it: every value
slot gets its kind and payload, every vec its size and data address (padding
may hold stale bytes; the C side never reads it). A value that does not fit
(``_Overflow``: a body of more than a few KiB) is lowered the usual way instead,
as is one lowered while its arena is in use (a lowering that reenters itself
through a value's attribute).

The checks and their errors are ``host.runtime.lowering``'s, in the same order.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from ctypes import addressof
from typing import Any

from host.runtime.c_api import (
    BOOL,
    CHAR,
    ENTRY,
    ENTRY_VAL,
    ENUM,
    F32,
    F64,
    FLAGS,
    INTEGERS,
    LIST,
    MEMORY,
    NAME,
    OF,
    RECORD,
    STRING,
    TUPLE,
    U8,
    VAL,
    val_clone,
)
from host.runtime.wit_types import (
    WitEnum,
    WitFlags,
    WitList,
    WitPrimitive,
    WitRecord,
    WitTuple,
    WitType,
)

__all__ = ["image_lowerer"]

# A converter here: image(arena, val, at) writes `val` as the value slot at address
# `at`, taking the memory its parts need from the arena.
Image = Callable[["_Arena", Any, int], None]
Lower = Callable[[Any, Any, Any, int, int], None]

# The arena's size: a list<u8> of 2 KiB (64 KiB of values) fits, as in lowering's
# chunks (malloc'd memory; a larger buffer would be mmap'd afresh).
_ARENA = 64 * 1024
_U8_KINDS = bytes((U8,)) * (_ARENA // VAL)


class _Overflow(Exception):
    """The value does not fit the arena: lower it the usual way."""


class _Arena:
    """A reusable buffer; ``top`` is the address of its first free byte."""

    __slots__ = ("_buffer", "end", "start", "top")

    def __init__(self) -> None:
        self._buffer = (ctypes.c_ubyte * _ARENA)()
        self.start = addressof(self._buffer)
        self.end = self.start + _ARENA
        self.top = self.start


def _head(payload: str) -> struct.Struct:
    """A value slot's kind byte and, at OF, its payload (read through MEMORY)."""
    return struct.Struct(f"@B{OF - 1}x{payload}")


_VEC_HEAD = _head("NP")  # kind, then a vec's size and data address
_NAME = struct.Struct("@NP")


# -- scalars ---------------------------------------------------------------------


def _bool(arena: _Arena, val: Any, at: int) -> None:
    if not isinstance(val, bool):
        raise TypeError("expected bool for Bool type")
    _BOOL_HEAD.pack_into(MEMORY, at - 1, BOOL, 1 if val else 0)


_BOOL_HEAD = _head("B")


def _int(name: str) -> Image:
    kind, fmt = INTEGERS[name]
    head = _head(fmt.upper())
    mask = (1 << (8 * struct.calcsize(fmt))) - 1
    message = f"expected int for {name.upper()} type"
    pack = head.pack_into

    def image(arena: _Arena, val: Any, at: int) -> None:
        if not isinstance(val, int):
            raise TypeError(message)
        pack(MEMORY, at - 1, kind, val & mask)

    return image


_F32_HEAD = _head("f")
_F64_HEAD = _head("d")
_CHAR_HEAD = _head("I")


def _f32(arena: _Arena, val: Any, at: int) -> None:
    if not isinstance(val, float):
        raise TypeError("expected float for F32 type")
    # Rounded through c_float, as lowering does (too large becomes inf).
    _F32_HEAD.pack_into(MEMORY, at - 1, F32, ctypes.c_float(val).value)


def _f64(arena: _Arena, val: Any, at: int) -> None:
    if not isinstance(val, float):
        raise TypeError("expected float for F64 type")
    _F64_HEAD.pack_into(MEMORY, at - 1, F64, val)


def _char(arena: _Arena, val: Any, at: int) -> None:
    if not isinstance(val, str) or len(val) != 1:
        raise TypeError("expected single-character string for Char type")
    _CHAR_HEAD.pack_into(MEMORY, at - 1, CHAR, ord(val))


def _string(kind: int, message: str) -> Image:
    pack = _VEC_HEAD.pack_into

    def image(arena: _Arena, val: Any, at: int) -> None:
        if not isinstance(val, str):
            raise TypeError(message)
        data = val.encode("utf-8")
        pack(MEMORY, at - 1, kind, len(data), _put(arena, data))

    return image


# -- containers --------------------------------------------------------------------


def _put(arena: _Arena, data: bytes) -> int:
    """The address of a copy of `data` in the arena (bytes of text: no alignment)."""
    top = arena.top
    end = top + len(data)
    if end > arena.end:
        raise _Overflow
    arena.top = end
    MEMORY[top - 1 : end - 1] = data
    return top


def _take(arena: _Arena, size: int) -> int:
    """The address of `size` bytes of the arena, 8-aligned (for value slots)."""
    top = (arena.top + 7) & -8
    end = top + size
    if end > arena.end:
        raise _Overflow
    arena.top = end
    return top


def _bytes(arena: _Arena, val: Any, at: int) -> None:
    if not isinstance(val, bytes):
        raise TypeError("expected bytes value")
    n = len(val)
    if n == 0:  # an empty body, the common case for requests
        _VEC_HEAD.pack_into(MEMORY, at - 1, LIST, 0, 0)
        return
    data = _take(arena, n * VAL)
    start = data - 1
    end = start + n * VAL
    # One U8 value per byte: the kinds, then the bytes, each with a strided copy.
    MEMORY[start:end:VAL] = _U8_KINDS[:n]
    MEMORY[start + OF : end : VAL] = val
    _VEC_HEAD.pack_into(MEMORY, at - 1, LIST, n, data)


def _list(element: Image) -> Image:
    pack = _VEC_HEAD.pack_into

    def image(arena: _Arena, val: Any, at: int) -> None:
        if not isinstance(val, list):
            raise TypeError("expected list value")
        # A snapshot: every slot the size promises is written, whatever the
        # elements' conversions do to the list.
        items = tuple(val)
        n = len(items)
        data = _take(arena, n * VAL)
        pack(MEMORY, at - 1, LIST, n, data)
        for o, item in zip(range(data, data + n * VAL, VAL), items, strict=True):
            element(arena, item, o)

    return image


def _tuple(elements: tuple[Image, ...]) -> Image:
    n = len(elements)
    pack = _VEC_HEAD.pack_into
    offsets = tuple(range(0, n * VAL, VAL))

    if n == 2:  # the usual tuple (a header): no loop
        first, second = elements

        def pair(arena: _Arena, val: Any, at: int) -> None:
            if not isinstance(val, tuple):
                raise TypeError("expected tuple type")
            if len(val) != 2:
                raise TypeError("tuple length mismatch")
            data = _take(arena, 2 * VAL)
            pack(MEMORY, at - 1, TUPLE, 2, data)
            first(arena, val[0], data)
            second(arena, val[1], data + VAL)

        return pair

    def image(arena: _Arena, val: Any, at: int) -> None:
        if not isinstance(val, tuple):
            raise TypeError("expected tuple type")
        if len(val) != n:
            raise TypeError("tuple length mismatch")
        data = _take(arena, n * VAL)
        pack(MEMORY, at - 1, TUPLE, n, data)
        for element, o, item in zip(elements, offsets, val, strict=True):
            element(arena, item, data + o)

    return image


def _record(fields: tuple[tuple[str, Image], ...]) -> Image:
    n = len(fields)
    # The field names live in one buffer for the converter's lifetime: the copy
    # reads them from there. The entries start as a template: names set, values
    # empty bools, overwritten field by field.
    names = b"".join(name.encode("utf-8") for name, _ in fields)
    storage = ctypes.create_string_buffer(names, max(len(names), 1))
    template = bytearray(n * ENTRY)
    at = addressof(storage)
    for i, (name, _) in enumerate(fields):
        size = len(name.encode("utf-8"))
        _NAME.pack_into(template, i * ENTRY, size, at if size else 0)
        at += size
    entries = bytes(template)
    slots = tuple((name, i * ENTRY + ENTRY_VAL, image) for i, (name, image) in enumerate(fields))
    pack = _VEC_HEAD.pack_into

    def image(arena: _Arena, val: Any, at: int) -> None:
        data = _take(arena, n * ENTRY)
        MEMORY[data - 1 : data - 1 + n * ENTRY] = entries
        pack(MEMORY, at - 1, RECORD, n, data)
        for name, o, field in slots:
            field(arena, getattr(val, name), data + o)

    image.storage = storage  # type: ignore[attr-defined]  # kept alive with the converter
    return image


def _flags(arena: _Arena, val: Any, at: int) -> None:
    if not isinstance(val, set):
        raise TypeError("expected set type for Flags type")
    if not all(isinstance(s, str) for s in val):
        raise TypeError("expected set of strings for Flags type")
    names = [s.encode("utf-8") for s in val]
    data = _take(arena, len(names) * NAME)
    for i, name in enumerate(names):
        _NAME.pack_into(MEMORY, data - 1 + i * NAME, len(name), _put(arena, name))
    _VEC_HEAD.pack_into(MEMORY, at - 1, FLAGS, len(names), data)


# -- compiling a type ----------------------------------------------------------------


def _image_for(ty: WitType) -> Image | None:
    """The image converter for a plain type; None for any other."""
    if isinstance(ty, WitPrimitive):
        name = ty.name
        if name in INTEGERS:
            return _int(name)
        simple: dict[str, Image] = {
            "bool": _bool,
            "f32": _f32,
            "f64": _f64,
            "char": _char,
            "string": _string(STRING, "expected string type"),
        }
        return simple[name]
    if isinstance(ty, WitList):
        if ty.element == WitPrimitive("u8"):
            return _bytes
        element = _image_for(ty.element)
        return None if element is None else _list(element)
    if isinstance(ty, WitRecord):
        fields = [(name, _image_for(field)) for name, field in ty.fields]
        if any(image is None for _, image in fields):
            return None
        return _record(tuple((name, image) for name, image in fields if image is not None))
    if isinstance(ty, WitTuple):
        elements = [_image_for(e) for e in ty.elements]
        if any(e is None for e in elements):
            return None
        return _tuple(tuple(e for e in elements if e is not None))
    if isinstance(ty, WitEnum):
        return _string(ENUM, "expected str type")
    if isinstance(ty, WitFlags):
        return _flags
    return None


def image_lowerer(ty: WitType, lower: Lower) -> Lower:
    """``lower`` (a converter's, for `ty`) through an image when `ty` is plain data.

    The result has ``Conv.lower``'s signature and falls back to ``lower`` for a
    value that does not fit the arena, or while the arena is in use.
    """
    image = _image_for(ty)
    if image is None:
        return lower
    return _ImageLowerer(image, lower).lower


class _ImageLowerer:
    __slots__ = ("_arena", "_image", "_lower")

    def __init__(self, image: Image, lower: Lower) -> None:
        self._image = image
        self._lower = lower
        self._arena: _Arena | None = _Arena()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        arena = self._arena
        if arena is not None:
            self._arena = None  # in use: a reentrant lowering takes the usual way
            try:
                root = arena.start
                arena.top = root + VAL
                self._image(arena, val, root)
                # The slot holds an empty bool (zeroes): the clone overwrites nothing owned.
                val_clone(root, addr + off)
                return
            except _Overflow:
                pass
            finally:
                self._arena = arena
        self._lower(store, val, mv, addr, off)
