"""The codec of one WIT type: an encoder and a decoder per node of a type tree.

``host.wire.codec`` encodes a function's parameters and result; it compiles
each of their types once (``node_for``, from the runtime's description in
``host.runtime.wit_types``) into a tree of ``Node``s, each holding an encoder
(wasmtime-py value to wire value) and a decoder closure (the other way), with
the children's closures bound in. The wire form of each kind is specified in
``host.wire.codec``'s docstring; this module implements it.

Variants, options and results ask wasmtime-py's case rule
(``host.runtime.wit_values.WitCases``) which case a value is, by exact class
first when encoding, and refuse to decode a value that wasmtime-py would lower
as another case (see "wasmtime-py picks the case" in ``host.wire.codec``).

A value that does not fit raises ``Bad``; containers add their place to its
path on the way out, and ``host.wire.codec`` reports it as a ``WireError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

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
from host.runtime.wit_values import Case, NoCase, Record, WitCases

__all__ = ["Bad", "Convert", "Node", "convert_fixed", "kind_of", "node_for"]

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


def _listed(what: str, names: Iterable[str]) -> str:
    """The names after a heading, for messages: ``cases: a, b``."""
    return f"{what} {', '.join(names)}"


def _enum_node(names: list[str]) -> Node:
    known = frozenset(names)
    listing = _listed("cases:", names)

    def check(value: Any) -> Any:
        if isinstance(value, str):
            if value in known:
                return value
            raise Bad(f"unknown enum case {value!r} ({listing})")
        raise Bad(f"expected an enum case name (string), got {kind_of(value)}")

    return Node(check, check, same_out=True, same_in=True)


def _flags_node(names: list[str]) -> Node:
    known = frozenset(names)
    listing = _listed("flags:", names)

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


def _bytes_node() -> Node:
    return _checked("bin (list<u8>)", bytes)


def _list_node(element: Node) -> Node:
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


def _tuple_node(elements: list[Node]) -> Node:
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


def _record_node(fields: list[tuple[str, Node]]) -> Node:
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
        record = Record()
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


# -- variant, option, result ------------------------------------------------------


class _Cases:
    """A variant-like type's cases on the wire: payload nodes, and the case rule's answers."""

    __slots__ = ("_listing", "cases", "kind", "nodes", "rules")

    def __init__(
        self, rules: WitCases, payloads: tuple[WitType | None, ...], segments: tuple[str, ...]
    ) -> None:
        self.rules = rules
        self.kind = rules.kind
        self.cases = rules.cases
        # Each payload's place on the wire (`segments`) names it when it cannot be sent.
        self.nodes = tuple(
            None if ty is None else within(segment, node_for, ty)
            for ty, segment in zip(payloads, segments, strict=True)
        )
        self._listing = _listed("cases:", (case.name for case in rules.cases))

    def node(self, case: Case) -> Node | None:
        return self.nodes[case.index]

    def named(self, tag: Any) -> Case:
        """The case a tag names; the tag may come from the network, so anything goes."""
        case = self.rules.named(tag)
        if case is not None:
            return case
        raise self._unknown(tag)

    def _unknown(self, tag: Any) -> Bad:
        if isinstance(tag, str):
            return Bad(f"unknown {self.kind} case {tag!r} ({self._listing})")
        return Bad(f"expected a {self.kind} case name (string), got {kind_of(tag)}")

    def select(self, value: Any) -> tuple[Case, Any]:
        """The case a wasmtime-py value is, and its payload."""
        try:
            return self.rules.split(value, exact_first=True)
        except NoCase as miss:
            if miss.not_variant:
                bad = Bad(f"expected a Variant ({self.kind}), got {kind_of(value)}")
            elif self.rules.tagged:
                bad = self._unknown(miss.tag)
            else:
                bad = Bad(f"{kind_of(value)} fits no case of this {self.kind} ({self._listing})")
        raise bad

    def lift(self, case: Case, payload: Any) -> Any:
        """The wasmtime-py value of a decoded case."""
        earlier = self.rules.misread_as(case, payload)
        if earlier is not None:
            raise Bad(
                f"wasmtime-py cannot pass case {case.name!r} of this {self.kind} with this "
                f"value: it would read it as case {earlier.name!r}"
            )
        return self.rules.value(case, payload)


def _variant(ty: WitVariant) -> Node:
    cases = _Cases(ty.cases, ty.payloads, ("[1]",) * len(ty.payloads))

    def encode(value: Any) -> Any:
        case, payload = cases.select(value)
        node = cases.node(case)
        if node is None:
            return [case.name]
        return [case.name, within("[1]", node.encode, payload)]

    def decode(value: Any) -> Any:
        if type(value) is not list or not 1 <= len(value) <= 2:
            raise Bad(f"expected [case] or [case, payload] (variant), got {kind_of(value)}")
        case = within("[0]", cases.named, value[0])
        node = cases.node(case)
        if node is None:
            if len(value) != 1:
                raise Bad(f"case {case.name!r} has no payload, got one")
            return cases.lift(case, None)
        if len(value) != 2:
            raise Bad(f"case {case.name!r} needs a payload, got none")
        return cases.lift(case, within("[1]", node.decode, value[1]))

    return Node(encode, decode)


def _option(ty: WitOption) -> Node:
    cases = _Cases(ty.cases, (None, ty.payload), ("[0]", "[0]"))
    none, some = cases.cases
    inner = cases.node(some)
    assert inner is not None

    def encode(value: Any) -> Any:
        if cases.rules.tagged:
            case, value = cases.select(value)
            if case is none:
                return None
        elif value is None:
            return None
        return [within("[0]", inner.encode, value)]

    def decode(value: Any) -> Any:
        if value is None:
            return cases.lift(none, None)
        if type(value) is list and len(value) == 1:
            return cases.lift(some, within("[0]", inner.decode, value[0]))
        raise Bad(f"expected nil or [value] (option), got {kind_of(value)}")

    return Node(encode, decode)


def _result(ty: WitResult) -> Node:
    cases = _Cases(ty.cases, (ty.ok, ty.err), (".ok", ".err"))

    def encode(value: Any) -> Any:
        case, payload = cases.select(value)
        node = cases.node(case)
        if node is None:
            return {case.name: None}
        return {case.name: within("." + case.name, node.encode, payload)}

    def decode(value: Any) -> Any:
        if type(value) is not dict or len(value) != 1:
            raise Bad(
                f'expected {{"ok": value}} or {{"err": value}} (result), got {kind_of(value)}'
            )
        ((tag, payload),) = value.items()
        case = cases.named(tag)
        node = cases.node(case)
        if node is None:
            if payload is not None:
                raise Bad(f"case {tag!r} has no payload: expected nil, got {kind_of(payload)}")
            return cases.lift(case, None)
        return cases.lift(case, within("." + case.name, node.decode, payload))

    return Node(encode, decode)


# -- compiling a type ----------------------------------------------------------------

# The nodes of the kinds without parts, by WIT name; nodes hold no state, so types share them.
_PRIMITIVES: dict[str, Node] = {
    "bool": _checked("bool", bool),
    "s8": _integer("s8", 8, True),
    "u8": _integer("u8", 8, False),
    "s16": _integer("s16", 16, True),
    "u16": _integer("u16", 16, False),
    "s32": _integer("s32", 32, True),
    "u32": _integer("u32", 32, False),
    "s64": _integer("s64", 64, True),
    "u64": _integer("u64", 64, False),
    "f32": _float("f32"),
    "f64": _float("f64"),
    "char": _char(),
    "string": _checked("string", str),
}


def node_for(ty: WitType) -> Node:
    """The converters for one WIT type (walks the description once); Bad if it cannot cross."""
    if isinstance(ty, WitPrimitive):
        return _PRIMITIVES[ty.name]
    if isinstance(ty, WitList):
        if ty.element == WitPrimitive("u8"):
            return _bytes_node()
        return _list_node(within("[]", node_for, ty.element))
    if isinstance(ty, WitRecord):
        return _record_node([(name, within("." + name, node_for, f)) for name, f in ty.fields])
    if isinstance(ty, WitTuple):
        return _tuple_node([within(f"[{i}]", node_for, e) for i, e in enumerate(ty.elements)])
    if isinstance(ty, WitEnum):
        return _enum_node(list(ty.names))
    if isinstance(ty, WitFlags):
        return _flags_node(list(ty.names))
    if isinstance(ty, WitVariant):
        return _variant(ty)
    if isinstance(ty, WitOption):
        return _option(ty)
    if isinstance(ty, WitResult):
        return _result(ty)
    assert isinstance(ty, WitOpaque)
    raise Bad(f"{ty.what} cannot cross hosts; pass plain data instead")
