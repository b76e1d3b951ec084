"""Python values into wasmtime component values in raw memory, and back.

wasmtime-py converts a value by walking its type through the C API on every
call (``Func.type``, ``RecordType.fields``... each building new objects), and
``list<u8>`` one element at a time. Here a type is compiled once
(``converter_for``, from the runtime's description in
``host.runtime.wit_types``) into a tree of converters (``Conv``), one per type
node, with cached field names and children:

* lowering writes each ``wasmtime_component_val_t`` in place, through a view
  (ctypes array or memoryview) of the memory that will hold it, with struct
  packing and no ctypes objects per value; lifting reads through one;
* ``list<u8>`` moves as ``bytes`` with strided slice copies (bytearray images
  of the 32-byte U8 values, copied to and from C memory in 64 KiB chunks);
* variants, options and results pick and build their cases by wasmtime-py's
  rule (``host.runtime.wit_values.WitCases``), and box their payloads with
  ``wasmtime_component_val_new``;
* the kinds bound to a store (resources, futures, streams, error contexts)
  use the wasmtime-py type's own ``convert_to_c``/``convert_from_c``;
* except, for host functions (``converter_for(ty, host_handles=True)``),
  handles of host-defined resources: they cross straight through the C API
  (no ``ResourceAny``/``ResourceHost`` objects). A parameter lifts to a
  ``HandleRef``, its ``resource_any``'s address (``host_rep`` reads the rep while
  the call runs); a result lowers from a ``HostHandle`` (rep and kind), both
  in ``host.runtime.wit_values``. Variants, options and results are then in
  the plain spelling (``wit_values.plain_cases``: ``Ok``/``Err``, ``None`` or the
  payload, ``Variant``), so host functions need no translation of their own. The
  ``store`` of such a converter is the host function's raw context. An
  export's parameter may be a ``HostHandle`` too, lowered the same way
  (wasi:http's request and response-outparam handed to ``handle``).

Otherwise values in and out are exactly what wasmtime-py accepts and produces,
and the errors for bad values are its errors.

Memory ownership mirrors wasmtime-py (``wasmtime/component/_types.py``; the C
layout and allocators are in ``host.runtime.c_api``):

* everything the C side frees is allocated by the C side; containers are
  allocated filled with empty defaults that own nothing, then overwritten, so
  a lowered value is always a valid value owning everything allocated so far,
  and one ``wasmtime_component_val_delete`` frees it, also when lowering
  failed half-way;
* lifting frees nothing: the caller deletes the root afterwards. wasmtime-py
  frees piecewise instead and releases payload boxes with ``val_delete``
  rather than ``val_free``, which leaks the box of every option/result/variant
  payload; here the root's delete drops the boxes too. Values lifted by
  wasmtime-py's own converters consume their slot, which is then reset to an
  empty ``bool`` so the root delete skips it, as wasmtime-py does for its
  children.

The C helpers are called with the GIL held: they only allocate, copy or free.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from ctypes import addressof, byref, c_void_p
from functools import partial
from typing import Any

from wasmtime.component import OwnType

from host.runtime.c_api import (
    BOOL,
    CHAR,
    ENTRY,
    ENTRY_VAL,
    ENUM,
    F32,
    F32_BITS,
    F64,
    F64_BITS,
    FLAGS,
    INTEGERS,
    LIST,
    MEMORY,
    NAME,
    OF,
    OPTION,
    PTR,
    RECORD,
    RESOURCE,
    RESULT,
    RESULT_VAL,
    STRING,
    TUPLE,
    U8,
    U32,
    VAL,
    VARIANT,
    VARIANT_VAL,
    VEC,
    Val,
    ValImage,
    byte_vec_new,
    raise_error,
    resource_any_to_host,
    resource_host_delete,
    resource_host_new,
    resource_host_rep,
    resource_host_to_any,
    string_of,
    val_delete,
    val_new,
    valflags_new_uninit,
    vallist_new,
    vallist_new_uninit,
    valrecord_new_uninit,
    valtuple_new_uninit,
    view,
)
from host.runtime.wit_types import (
    WitEnum,
    WitFlags,
    WitList,
    WitOpaque,
    WitOption,
    WitPrimitive,
    WitRecord,
    WitResult,
    WitTuple,
    WitType,
    WitVariant,
)
from host.runtime.wit_values import (
    Case,
    Err,
    HandleRef,
    HostHandle,
    NoCase,
    Ok,
    PlainCases,
    Record,
    WitCases,
    plain_cases,
)

__all__ = ["Conv", "converter_for", "host_rep", "rep_at"]


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
        mv[off] = BOOL

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return mv[off + OF] != 0


class _Int(Conv):
    """An integer kind. Out-of-range values wrap, as ctypes' field setters do."""

    __slots__ = ("_kind", "_lifted", "_lowered", "_mask", "_message")

    def __init__(self, name: str) -> None:
        kind, fmt = INTEGERS[name]
        self._kind = kind
        self._lifted = struct.Struct("@" + fmt)
        self._lowered = struct.Struct("@" + fmt.upper())
        self._mask = (1 << (8 * self._lowered.size)) - 1
        # wasmtime-py's message names its type class: S8, U64...
        self._message = f"expected int for {name.upper()} type"

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, int):
            raise TypeError(self._message)
        self._lowered.pack_into(mv, off + OF, val & self._mask)
        mv[off] = self._kind

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return self._lifted.unpack_from(mv, off + OF)[0]


class _F32(Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, float):
            raise TypeError("expected float for F32 type")
        # Round through c_float as wasmtime-py's ctypes setter does: too large a
        # value becomes inf there, where struct would raise OverflowError.
        F32_BITS.pack_into(mv, off + OF, ctypes.c_float(val).value)
        mv[off] = F32

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return F32_BITS.unpack_from(mv, off + OF)[0]


class _F64(Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, float):
            raise TypeError("expected float for F64 type")
        F64_BITS.pack_into(mv, off + OF, val)
        mv[off] = F64

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return F64_BITS.unpack_from(mv, off + OF)[0]


class _Char(Conv):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, str) or len(val) != 1:
            raise TypeError("expected single-character string for Char type")
        U32.pack_into(mv, off + OF, ord(val))
        mv[off] = CHAR

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return chr(U32.unpack_from(mv, off + OF)[0])


class _String(Conv):
    """A string; enums are the same on the wire with another kind."""

    __slots__ = ("_message", "kind")

    def __init__(self, kind: int = STRING, message: str = "expected string type") -> None:
        self.kind = kind
        self._message = message

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, str):
            raise TypeError(self._message)
        data = val.encode("utf-8")
        byte_vec_new(addr + off + OF, len(data), data)
        mv[off] = self.kind

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
    data: int = VEC.unpack_from(mv, off + OF)[1]
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
_U8_KINDS = bytes((U8,)) * _BYTES_CHUNK


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


class _Bytes(Conv):
    """``list<u8>`` as ``bytes``, copied with strided slices, not element by element."""

    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, bytes):
            raise TypeError("expected bytes value")
        n = len(val)
        if n == 0:  # an empty body, the common case for requests
            _new_vec(vallist_new_uninit, LIST, 0, mv, addr, off)
            return
        if n > _BYTES_CHUNK:
            data = _new_vec(vallist_new_uninit, LIST, n, mv, addr, off)
            self._fill(val, data)
            return
        image = _u8_image(val)  # a local: the address below is only valid while it lives
        # vallist_new copies the values (plain data) into a C allocation.
        vallist_new(addr + off + OF, n, _image_address(image))
        mv[off] = LIST

    @staticmethod
    def _fill(val: bytes, data: int) -> None:
        """Overwrite the empty bools of a C list with U8 values, a chunk at a time."""
        whole = memoryview(val)
        for start in range(0, len(val), _BYTES_CHUNK):
            image = _u8_image(whole[start : start + _BYTES_CHUNK])
            ctypes.memmove(data + start * VAL, _image_address(image), len(image))

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = VEC.unpack_from(mv, off + OF)
        if n == 0:
            return b""
        # Every VAL-th byte of the values, read in place (no copy of the whole values).
        start = data - 1 + OF
        return MEMORY[start : start + n * VAL : VAL].tobytes()


class _List(Conv):
    __slots__ = ("_lift", "_lower")

    def __init__(self, element: Conv) -> None:
        self._lower = element.lower
        self._lift = element.lift

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, list):
            raise TypeError("expected list value")
        n = len(val)
        data = _new_vec(vallist_new_uninit, LIST, n, mv, addr, off)
        if n:
            lower, start = self._lower, data - 1
            # zip with the offsets: a list growing meanwhile cannot write past the end.
            for o, item in zip(range(start, start + n * VAL, VAL), val, strict=False):
                lower(store, item, MEMORY, 1, o)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = VEC.unpack_from(mv, off + OF)
        if n == 0:
            return []
        lift, start = self._lift, data - 1
        return [lift(MEMORY, 1, o) for o in range(start, start + n * VAL, VAL)]


# Two string values side by side (a tuple<string, string>'s elements): each one's vec.
_STRING_PAIR = struct.Struct(f"@{OF}xNP{VAL - OF - VEC.size}x{OF}xNP")


class _Tuple(Conv):
    __slots__ = ("_lifts", "_lowers", "_offsets", "_strings")

    def __init__(self, elements: list[Conv]) -> None:
        # tuple<string, string> (not enums: theirs lift the same, but stay generic).
        self._strings = len(elements) == 2 and all(
            type(e) is _String and e.kind == STRING for e in elements
        )
        self._lowers = tuple(e.lower for e in elements)
        self._lifts = tuple(e.lift for e in elements)
        # Each element's offset from the data address, through MEMORY.
        self._offsets = tuple(range(-1, len(elements) * VAL - 1, VAL))

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, tuple):
            raise TypeError("expected tuple type")
        n = len(self._lowers)
        if len(val) != n:
            raise TypeError("tuple length mismatch")
        data = _new_vec(valtuple_new_uninit, TUPLE, n, mv, addr, off)
        for lower, o, item in zip(self._lowers, self._offsets, val, strict=True):
            lower(store, item, MEMORY, 1, data + o)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = VEC.unpack_from(mv, off + OF)
        _check_size(n, len(self._lifts))
        if self._strings:  # a header: both strings' vecs read with one unpack
            size, at, size2, at2 = _STRING_PAIR.unpack_from(MEMORY, data - 1)
            return (
                str(MEMORY[at - 1 : at - 1 + size], "utf-8") if size else "",
                str(MEMORY[at2 - 1 : at2 - 1 + size2], "utf-8") if size2 else "",
            )
        if n == 2:  # the usual tuple (a header, an environment variable): no loop
            first, second = self._lifts
            return (first(MEMORY, 1, data - 1), second(MEMORY, 1, data - 1 + VAL))
        pairs = zip(self._lifts, self._offsets, strict=True)
        return tuple([lift(MEMORY, 1, data + o) for lift, o in pairs])


class _Record(Conv):
    """A record as ``wasmtime.component.Record`` with kebab-case attribute names."""

    __slots__ = ("_fields", "_lifts", "_n")

    def __init__(self, fields: list[tuple[str, Conv]]) -> None:
        self._n = len(fields)
        # (name, encoded name, entry offset, lower) per field, in type order.
        self._fields = tuple(
            (name, name.encode("utf-8"), i * ENTRY, conv.lower)
            for i, (name, conv) in enumerate(fields)
        )
        self._lifts = tuple(
            (name, i * ENTRY + ENTRY_VAL, conv.lift) for i, (name, conv) in enumerate(fields)
        )

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        n = self._n
        data = _new_vec(valrecord_new_uninit, RECORD, n, mv, addr, off)
        for name, encoded, o, lower in self._fields:
            lower(store, getattr(val, name), MEMORY, 1, data - 1 + o + ENTRY_VAL)
            # The C side frees every entry's name with the record.
            byte_vec_new(data + o, len(encoded), encoded)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = VEC.unpack_from(mv, off + OF)
        _check_size(n, self._n)
        record = Record()
        # Record has no __setattr__: filling __dict__ is what setattr would do.
        attrs = record.__dict__
        start = data - 1
        for name, o, lift in self._lifts:
            attrs[name] = lift(MEMORY, 1, start + o)
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
        data = _new_vec(valflags_new_uninit, FLAGS, len(names), mv, addr, off)
        for i, name in enumerate(names):
            byte_vec_new(data + i * NAME, len(name), name)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        n, data = VEC.unpack_from(mv, off + OF)
        if n == 0:
            return set()
        names = view(data, n * NAME)
        return {string_of(names, o) for o in range(0, n * NAME, NAME)}


# -- variant, option, result ---------------------------------------------------------


class _Cases(Conv):
    """Case selection and payload boxing shared by variant, option and result."""

    __slots__ = ("_cases", "_convs", "_tags")

    def __init__(
        self, cases: WitCases, payloads: tuple[WitType | None, ...], host_handles: bool = False
    ) -> None:
        self._cases: WitCases | PlainCases = plain_cases(cases) if host_handles else cases
        self._convs = tuple(
            None if p is None else converter_for(p, host_handles=host_handles) for p in payloads
        )
        self._tags = tuple(case.name.encode("utf-8") for case in cases.cases)

    def _select(self, val: Any) -> tuple[Case, Any]:
        try:
            return self._cases.split(val)
        except NoCase as miss:
            raise miss.wasmtime_error() from None

    def _box(self, store: Any, case: Case, payload: Any) -> int:
        """Lower the payload and move it into a C box (0 for a payload-less case)."""
        conv = self._convs[case.index]
        if conv is None:
            return 0
        return _boxed(conv.lower, store, payload)

    def _lift_case(self, case: Case, box: int) -> Any:
        conv = self._convs[case.index]
        if conv is None:
            return self._cases.value(case, None)
        return self._cases.value(case, conv.lift(MEMORY, 1, box - 1))


class _Variant(_Cases):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        case, payload = self._select(val)
        box = self._box(store, case, payload)
        tag = self._tags[case.index]
        byte_vec_new(addr + off + OF, len(tag), tag)
        PTR.pack_into(mv, off + VARIANT_VAL, box)
        mv[off] = VARIANT

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        tag = string_of(mv, off + OF)
        case = self._cases.named(tag)
        if case is None:
            raise ValueError(f"tag {tag} not found in variant cases")
        return self._lift_case(case, PTR.unpack_from(mv, off + VARIANT_VAL)[0])


class _Option(_Cases):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        case, payload = self._select(val)
        PTR.pack_into(mv, off + OF, self._box(store, case, payload))
        mv[off] = OPTION

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        box = PTR.unpack_from(mv, off + OF)[0]
        return self._lift_case(self._cases.cases[1 if box else 0], box)


class _Result(_Cases):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        case, payload = self._select(val)
        box = self._box(store, case, payload)
        mv[off + OF] = 1 if case.index == 0 else 0
        PTR.pack_into(mv, off + RESULT_VAL, box)
        mv[off] = RESULT

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        case = self._cases.cases[0 if mv[off + OF] else 1]
        return self._lift_case(case, PTR.unpack_from(mv, off + RESULT_VAL)[0])


class _PlainOption(_Cases):
    """An option in the plain spelling (a host function's): ``None`` or the payload."""

    __slots__ = ("_some_lift", "_some_lower")

    def __init__(self, cases: WitCases, payload: WitType) -> None:
        super().__init__(cases, (None, payload), host_handles=True)
        some = self._convs[1]
        assert some is not None
        self._some_lower = some.lower
        self._some_lift = some.lift

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        box = 0 if val is None else _boxed(self._some_lower, store, val)
        PTR.pack_into(mv, off + OF, box)
        mv[off] = OPTION

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        box = PTR.unpack_from(mv, off + OF)[0]
        return self._some_lift(MEMORY, 1, box - 1) if box else None


class _PlainResult(_Cases):
    """A result in the plain spelling (a host function's): ``Ok(value)`` or ``Err(value)``."""

    __slots__ = ("_err", "_ok")

    def __init__(self, cases: WitCases, ok: WitType | None, err: WitType | None) -> None:
        super().__init__(cases, (ok, err), host_handles=True)
        self._ok, self._err = self._convs

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        cls = type(val)
        if cls is Ok:
            conv, is_ok = self._ok, 1
        elif cls is Err:
            conv, is_ok = self._err, 0
        else:
            self._select(val)  # raises the error for a value of neither case
            raise AssertionError(f"{val!r} is neither Ok nor Err")
        box = 0 if conv is None else _boxed(conv.lower, store, val.value)
        mv[off + OF] = is_ok
        PTR.pack_into(mv, off + RESULT_VAL, box)
        mv[off] = RESULT

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        box = PTR.unpack_from(mv, off + RESULT_VAL)[0]
        if mv[off + OF]:
            ok = self._ok
            return Ok(None if ok is None else ok.lift(MEMORY, 1, box - 1))
        err = self._err
        return Err(None if err is None else err.lift(MEMORY, 1, box - 1))


def _boxed(lower: Callable[[Any, Any, Any, int, int], None], store: Any, payload: Any) -> int:
    """``payload`` lowered, then moved into a C box (as ``_Cases._box``)."""
    image = ValImage()
    address = addressof(image)
    try:
        lower(store, payload, image, address, 0)
    except BaseException:
        val_delete(address)
        raise
    box: int = val_new(address)
    return box


# -- kinds only wasmtime-py converts ----------------------------------------------


class _Native(Conv):
    """A kind left to wasmtime-py's own converters (resources, futures, ...)."""

    __slots__ = ("_ty",)

    def __init__(self, ty: Any) -> None:
        self._ty = ty  # a wasmtime.component.ValType

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if isinstance(val, HostHandle):
            # A host resource handed to an export (wasi:http's request and outparam):
            # straight through the C API, as a host function's result is.
            _lower_host_handle(store._context(), val, isinstance(self._ty, OwnType), mv, off)
            return
        raw = Val.from_address(addr + off)
        try:
            self._ty.convert_to_c(store, val, ctypes.pointer(raw))
        except BaseException:
            # OwnType sets the kind before taking the handle, so a failure can
            # leave a resource kind without a resource. Nothing was allocated
            # yet; an empty bool keeps the slot valid for the final delete.
            raw.kind = BOOL
            raw.of.boolean = False
            raise

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        raw = Val.from_address(addr + off)
        val = self._ty.convert_from_c(raw)
        # convert_from_c consumed the value; an empty bool keeps the root's delete off it.
        raw.kind = BOOL
        raw.of.boolean = False
        return val


# -- host resources, without wasmtime-py's objects ------------------------------


def host_rep(context: int, handle: HandleRef) -> int:
    """The rep behind a handle of a host resource that a host function received."""
    return rep_at(context, handle.address)


def rep_at(context: int, address: int) -> int:
    """The rep behind the ``resource_any`` at ``address`` (a host function's argument)."""
    host = c_void_p()
    error = resource_any_to_host(context, address, byref(host))
    if error:
        raise_error(error)
    try:
        rep: int = resource_host_rep(host)
    finally:
        resource_host_delete(host)
    return rep


def _lower_host_handle(context: Any, val: HostHandle, owned: bool, mv: Any, off: int) -> None:
    """``val`` as a ``resource_any`` of the store behind ``context``."""
    host = resource_host_new(owned, val.rep, val.kind)
    resource = c_void_p()
    try:
        error = resource_host_to_any(context, host, byref(resource))
    finally:
        resource_host_delete(host)
    if error:
        raise_error(error)
    PTR.pack_into(mv, off + OF, resource.value or 0)
    mv[off] = RESOURCE


class _HostResource(Conv):
    """``own``/``borrow`` of a host resource in a host function (the store is a context).

    Lifting leaves the ``resource_any`` in its slot: the C API frees the arguments
    after the call, which is what wasmtime-py's ``ResourceAny`` did when collected.
    """

    __slots__ = ("_owned",)

    def __init__(self, owned: bool) -> None:
        self._owned = owned

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        if not isinstance(val, HostHandle):
            raise TypeError("expected a HostHandle for a host resource")
        _lower_host_handle(store, val, self._owned, mv, off)

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        return HandleRef(PTR.unpack_from(mv, off + OF)[0])


# -- compiling a type ----------------------------------------------------------------

# The converters of the kinds without parts, by WIT name.
_PRIMITIVES: dict[str, Callable[[], Conv]] = {
    "bool": _Bool,
    **{name: partial(_Int, name) for name in INTEGERS},
    "f32": _F32,
    "f64": _F64,
    "char": _Char,
    "string": _String,
}


def converter_for(ty: WitType, *, host_handles: bool = False) -> Conv:
    """The converter for one WIT type (walks the description once).

    ``host_handles``: resources convert as a host function's handles (see above).
    """
    if isinstance(ty, WitPrimitive):
        return _PRIMITIVES[ty.name]()
    if isinstance(ty, WitList):
        if ty.element == WitPrimitive("u8"):
            return _Bytes()
        return _List(converter_for(ty.element, host_handles=host_handles))
    if isinstance(ty, WitRecord):
        return _Record(
            [(name, converter_for(field, host_handles=host_handles)) for name, field in ty.fields]
        )
    if isinstance(ty, WitTuple):
        return _Tuple([converter_for(e, host_handles=host_handles) for e in ty.elements])
    if isinstance(ty, WitEnum):
        return _String(ENUM, "expected str type")
    if isinstance(ty, WitFlags):
        return _Flags()
    if isinstance(ty, WitVariant):
        return _Variant(ty.cases, ty.payloads, host_handles)
    if isinstance(ty, WitOption):
        if host_handles:
            return _PlainOption(ty.cases, ty.payload)
        return _Option(ty.cases, (None, ty.payload))
    if isinstance(ty, WitResult):
        if host_handles:
            return _PlainResult(ty.cases, ty.ok, ty.err)
        return _Result(ty.cases, (ty.ok, ty.err))
    assert isinstance(ty, WitOpaque)
    if host_handles:
        if not ty.is_handle:
            raise TypeError(f"a host function cannot take or return {ty.what}")
        return _HostResource(isinstance(ty.native, OwnType))
    return _Native(ty.native)
