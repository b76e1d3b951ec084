"""The compiled type tree of the wire codec: one encode/decode pair per WIT type.

``host.wire.codec`` compiles a function's types once into a tree of ``Node``s, each
holding an encoder and a decoder closure (the format is described there). The
builders here need nothing of a wasmtime-py type but names and compiled
children: scalars, enums, flags, ``list``, ``tuple`` and ``record``. Walking the
types is ``host.wire.codec``'s job, and so are the nodes that need more of a type:
variant, option and result, whose cases follow wasmtime-py's class rules.

A value that does not fit raises ``Bad``; containers add their place to its
path on the way out, and ``host.wire.codec`` reports it as a ``WireError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from wasmtime import component as wc

__all__ = [
    "SCALARS",
    "Bad",
    "Convert",
    "Node",
    "bytes_node",
    "convert_fixed",
    "enum_node",
    "flags_node",
    "kind_of",
    "list_node",
    "listed",
    "record_node",
    "tuple_node",
    "within",
]

Convert = Callable[[Any], Any]

_MISSING = object()


class Bad(Exception):
    """A value that does not fit its type; containers add their path segment on the way out.

    Paths are collected only when something fails, so the converters pay
    nothing for them (a ``try`` costs nothing until it catches).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []  # innermost first

    def path(self, root: str) -> str:
        """Where the bad value is in the wire document, `root` being the outermost place."""
        return root + "".join(reversed(self.segments))


def within(segment: str, convert: Callable[[Any], Any], value: Any) -> Any:
    """``convert(value)``, adding `segment` to the path of a failure."""
    try:
        return convert(value)
    except Bad as bad:
        bad.segments.append(segment)
        raise


_KINDS: dict[type, str] = {
    type(None): "nil",
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    bytes: "bin",
    list: "array",
    dict: "map",
    tuple: "tuple",
    set: "set",
}


def kind_of(value: Any) -> str:
    """What a value is, in wire terms where it is a wire value (for messages)."""
    kind = _KINDS.get(type(value))
    if kind is None:
        return type(value).__name__
    if isinstance(value, list | tuple):
        return f"{kind} of {len(value)}"
    return kind


# -- the compiled type tree ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """The converters for one WIT type.

    ``encode`` takes a wasmtime-py value to a wire value, ``decode`` the other
    way. ``same_out``/``same_in`` say a converter returns its input unchanged
    (it only checks): a container of such children can check them and return
    itself instead of building a copy.
    """

    encode: Convert
    decode: Convert
    same_out: bool = False
    same_in: bool = False


def _checked(name: str, ok: type | tuple[type, ...]) -> Node:
    """A scalar that is its own wire value, checked by class both ways."""

    def check(value: Any) -> Any:
        if isinstance(value, ok):
            return value
        raise Bad(f"expected {name}, got {kind_of(value)}")

    return Node(check, check, same_out=True, same_in=True)


def _integer(name: str, bits: int, signed: bool) -> Node:
    """An integer kind, range-checked: a value out of range never reaches a component."""
    low = -(1 << (bits - 1)) if signed else 0
    high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def check(value: Any) -> Any:
        # bool is an int subclass, but never a WIT integer.
        if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
            raise Bad(f"expected {name}, got {kind_of(value)}")
        if low <= value <= high:
            return value
        raise Bad(f"{value} is out of range for {name}")

    return Node(check, check, same_out=True, same_in=True)


def _float(name: str) -> Node:
    """A float kind: wasmtime-py takes only float; the wire may bring a whole-number int."""

    def encode(value: Any) -> Any:
        if isinstance(value, float):
            return value
        raise Bad(f"expected {name}, got {kind_of(value)}")

    def decode(value: Any) -> Any:
        if type(value) is float:
            return value
        if type(value) is int:
            return float(value)
        raise Bad(f"expected {name}, got {kind_of(value)}")

    return Node(encode, decode, same_out=True)


def _char() -> Node:
    def check(value: Any) -> Any:
        if isinstance(value, str) and len(value) == 1:
            return value
        got = f"string of {len(value)} characters" if isinstance(value, str) else kind_of(value)
        raise Bad(f"expected char (a string of 1 character), got {got}")

    return Node(check, check, same_out=True, same_in=True)


def listed(what: str, names: Iterable[str]) -> str:
    """The names after a heading, for messages: ``cases: a, b``."""
    return f"{what} {', '.join(names)}"


def enum_node(names: list[str]) -> Node:
    known = frozenset(names)
    listing = listed("cases:", names)

    def check(value: Any) -> Any:
        if isinstance(value, str):
            if value in known:
                return value
            raise Bad(f"unknown enum case {value!r} ({listing})")
        raise Bad(f"expected an enum case name (string), got {kind_of(value)}")

    return Node(check, check, same_out=True, same_in=True)


def flags_node(names: list[str]) -> Node:
    known = frozenset(names)
    listing = listed("flags:", names)

    def check_name(name: Any) -> None:
        if not isinstance(name, str):
            raise Bad(f"expected a flag name (string), got {kind_of(name)}")
        if name not in known:
            raise Bad(f"unknown flag {name!r} ({listing})")

    def encode(value: Any) -> Any:
        if not isinstance(value, set | frozenset):
            raise Bad(f"expected a set of flag names, got {kind_of(value)}")
        for name in value:
            check_name(name)
        return sorted(value)

    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise Bad(f"expected an array of flag names, got {kind_of(value)}")
        _convert_list(check_name, value, copy=False)
        flags = set(value)
        if len(flags) != len(value):
            raise Bad("a flag is named more than once")
        return flags

    return Node(encode, decode)


# -- lists, tuples, records ------------------------------------------------------


def _first_failure(pairs: Iterable[tuple[Convert, Any]]) -> int:
    """The index of the first item that fails to convert (converters are pure)."""
    for index, (convert, item) in enumerate(pairs):
        try:
            convert(item)
        except Bad:
            return index
    return -1  # not reached: only called after a failure


def _convert_list(convert: Convert, items: list[Any], copy: bool) -> list[Any]:
    """Every item converted; a failure gets its index (found again, off the fast path).

    Without `copy` the items are only checked, and `items` itself is returned.
    """
    try:
        if not copy:
            for item in items:
                convert(item)
            return items
        return [convert(item) for item in items]
    except Bad as bad:
        bad.segments.append(f"[{_first_failure(zip(repeat(convert), items))}]")
        raise


def convert_fixed(converts: tuple[Convert, ...], items: Any, copy: bool) -> Any:
    """Item i converted by converts[i] (the caller checked the length), as _convert_list."""
    try:
        if not copy:
            for convert, item in zip(converts, items, strict=True):
                convert(item)
            return items
        return [convert(item) for convert, item in zip(converts, items, strict=True)]
    except Bad as bad:
        bad.segments.append(f"[{_first_failure(zip(converts, items, strict=True))}]")
        raise


def bytes_node() -> Node:
    return _checked("bin (list<u8>)", bytes)


def list_node(element: Node) -> Node:
    encode_item, decode_item = element.encode, element.decode
    copy_out, copy_in = not element.same_out, not element.same_in

    def encode(value: Any) -> Any:
        if not isinstance(value, list):
            raise Bad(f"expected a list, got {kind_of(value)}")
        return _convert_list(encode_item, value, copy_out)

    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise Bad(f"expected an array, got {kind_of(value)}")
        return _convert_list(decode_item, value, copy_in)

    return Node(encode, decode, same_out=element.same_out, same_in=element.same_in)


def tuple_node(elements: list[Node]) -> Node:
    n = len(elements)
    encoders = tuple(e.encode for e in elements)
    decoders = tuple(e.decode for e in elements)
    same_out = all(e.same_out for e in elements)
    same_in = all(e.same_in for e in elements)

    def encode(value: Any) -> Any:
        if not isinstance(value, tuple) or len(value) != n:
            raise Bad(f"expected a tuple of {n}, got {kind_of(value)}")
        # msgpack writes tuples as arrays: a checked tuple goes out as it is.
        return convert_fixed(encoders, value, copy=not same_out)

    def decode(value: Any) -> Any:
        if type(value) is not list or len(value) != n:
            raise Bad(f"expected an array of {n}, got {kind_of(value)}")
        return tuple(convert_fixed(decoders, value, copy=not same_in))

    return Node(encode, decode, same_out=same_out)


def record_node(fields: list[tuple[str, Node]]) -> Node:
    encoders = tuple((name, node.encode) for name, node in fields)
    decoders = tuple((name, node.decode) for name, node in fields)
    known = frozenset(name for name, _ in fields)

    def encode(value: Any) -> Any:
        wire = {}
        for name, convert in encoders:
            item = getattr(value, name, _MISSING)
            if item is _MISSING:
                raise Bad(f"expected a record with field {name!r}, got {kind_of(value)}")
            try:
                wire[name] = convert(item)
            except Bad as bad:
                bad.segments.append("." + name)
                raise
        return wire

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise Bad(f"expected a map (record), got {kind_of(value)}")
        record = wc.Record()
        attrs = record.__dict__  # what setattr would fill: Record has no __setattr__
        for name, convert in decoders:
            item = value.get(name, _MISSING)
            if item is _MISSING:
                raise Bad(f"missing field {name!r}")
            try:
                attrs[name] = convert(item)
            except Bad as bad:
                bad.segments.append("." + name)
                raise
        if len(value) != len(decoders):
            extra = sorted(repr(key) for key in value if key not in known)
            raise Bad(f"unknown field(s) {', '.join(extra)}")
        return record

    return Node(encode, decode)


# The nodes of the kinds without children; nodes hold no state, so types share them.
SCALARS: dict[type, Node] = {
    wc.Bool: _checked("bool", bool),
    wc.S8: _integer("s8", 8, True),
    wc.U8: _integer("u8", 8, False),
    wc.S16: _integer("s16", 16, True),
    wc.U16: _integer("u16", 16, False),
    wc.S32: _integer("s32", 32, True),
    wc.U32: _integer("u32", 32, False),
    wc.S64: _integer("s64", 64, True),
    wc.U64: _integer("u64", 64, False),
    wc.F32: _float("f32"),
    wc.F64: _float("f64"),
    wc.Char: _char(),
    wc.String: _checked("string", str),
}
