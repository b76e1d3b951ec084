"""Arguments and results of component calls on the wire between hosts.

A linked call to a component on another host carries its arguments (and the
reply its result) as msgpack, shaped by the function's WIT types. Each host
compiles a function's type once (``WireCodec.for_func``) into one encoder and
one decoder closure per WIT type node, as ``host.fastcall`` does for calls.

Wire format (language-neutral: it names no Python types)
--------------------------------------------------------

* The parameters of a call: an array with one element per parameter, in
  declaration order. The result: the value itself; ``nil`` for a function
  without a result.
* ``bool``: a boolean. ``s8``..``u64``: an integer within the type's range.
  ``f32``/``f64``: a float (written as float 64; decoders also take float 32,
  and integers, which some encoders, e.g. JavaScript's, write for whole numbers).
* ``char``: a string of one Unicode scalar value. ``string``: a string (msgpack
  str, UTF-8; never bin).
* ``list<u8>``: bin. Any other ``list<T>``: an array. ``tuple<...>``: an array of
  exactly that many elements.
* ``record``: a map keyed by the WIT field names (kebab-case, as in the WIT),
  exactly the record's fields: a missing or an unknown field is an error.
* ``enum``: the case name, a string.
* ``flags``: an array of the names of the flags that are set, sorted (decoders
  take any order, but no duplicates).
* ``option<T>``: ``nil`` for none, ``[value]`` (a one-element array) for some,
  so that ``option<option<T>>`` keeps some(none) apart from none.
* ``result<T, E>``: ``{"ok": value}`` or ``{"err": value}``; the value is ``nil``
  for a side without a type.
* ``variant``: ``[case-name]`` for a case without a payload, ``[case-name,
  payload]`` for one with a payload.
* Resources (``own``/``borrow``), futures, streams and error contexts cannot
  cross hosts: a function that takes or returns one has no codec.

Decoding checks everything against the type and raises ``WireError`` naming
the path of the bad value in the wire document, e.g. ``params[0].headers[2][1]:
expected string, got int`` (records add ``.field``, arrays and the payloads of
options ``[i]``/``[0]``, results ``.ok``/``.err``, variants ``[1]``). Input from
the network can be anything; it must never fail the host with anything else.

Python values are exactly those of wasmtime-py (``wasmtime.component``):
records are ``Record`` objects with kebab-case attribute names (any object with
those attributes encodes), ``list<u8>`` is ``bytes``, tuples are tuples, enums
``str``, flags a ``set`` of names, and variants, options and results are
``Variant(tag, payload)`` when their cases' Python classes overlap and the bare
payload (``None`` for a case without one) when they do not. Decoded values can
go straight into ``Func``/``FastFunc``; what those return can be encoded.
Encoding checks too, a little more strictly than wasmtime-py lowers: integers
must be in range (wasmtime-py wraps them) and ``bool`` is not an integer.

wasmtime-py picks the case of a bare (untagged) value by the first case whose
classes it is an instance of, so a ``bool`` payload goes to an earlier ``u32``
case, any value to an earlier ``option`` case. The encoder picks by exact class
first, so values that wasmtime-py lifted keep their case; the decoder refuses a
value that wasmtime-py would lower as another case rather than change it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import msgpack
from wasmtime import component as wc

from host.errors import HostError

__all__ = ["WireCodec", "WireError", "check_size"]

Convert = Callable[[Any], Any]

_MISSING = object()


class WireError(HostError):
    """A value does not fit its WIT type, or a payload is not valid msgpack or too big.

    ``path`` names the bad value in the wire document (``params[0].body``), so
    the sender can find it; the message starts with it.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


def check_size(data: bytes, limit: int, what: str) -> None:
    """Refuse a payload over the lattice's maximum before sending it: NATS would drop it."""
    if len(data) > limit:
        raise WireError(
            f"{what} is {len(data)} bytes, over the lattice's max payload of {limit} bytes", what
        )


class _Bad(Exception):
    """A value that does not fit its type; containers add their path segment on the way out.

    Paths are collected only when something fails, so the converters pay
    nothing for them (a ``try`` costs nothing until it catches).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []  # innermost first

    def error(self, root: str) -> WireError:
        path = root + "".join(reversed(self.segments))
        return WireError(f"{path}: {self.reason}", path)


def _within(segment: str, convert: Callable[[Any], Any], value: Any) -> Any:
    """``convert(value)``, adding `segment` to the path of a failure."""
    try:
        return convert(value)
    except _Bad as bad:
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


def _got(value: Any) -> str:
    """What a value is, in wire terms where it is a wire value (for messages)."""
    kind = _KINDS.get(type(value))
    if kind is None:
        return type(value).__name__
    if isinstance(value, list | tuple):
        return f"{kind} of {len(value)}"
    return kind


def _unpack(root: str, data: bytes) -> Any:
    """The msgpack document in `data`; anything unreadable is a WireError."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        detail = str(exc) or type(exc).__name__
        raise WireError(f"{root}: not valid msgpack ({detail})", root) from None


def _pack(root: str, wire: Any) -> bytes:
    try:
        data: bytes = msgpack.packb(wire, use_bin_type=True)
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a lone surrogate in a str
        raise WireError(f"{root}: cannot encode ({exc})", root) from None
    return data


# -- the compiled type tree ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
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


def _checked(name: str, ok: type | tuple[type, ...]) -> _Node:
    """A scalar that is its own wire value, checked by class both ways."""

    def check(value: Any) -> Any:
        if isinstance(value, ok):
            return value
        raise _Bad(f"expected {name}, got {_got(value)}")

    return _Node(check, check, same_out=True, same_in=True)


def _integer(name: str, bits: int, signed: bool) -> _Node:
    """An integer kind, range-checked: a value out of range never reaches a component."""
    low = -(1 << (bits - 1)) if signed else 0
    high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def check(value: Any) -> Any:
        # bool is an int subclass, but never a WIT integer.
        if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
            raise _Bad(f"expected {name}, got {_got(value)}")
        if low <= value <= high:
            return value
        raise _Bad(f"{value} is out of range for {name}")

    return _Node(check, check, same_out=True, same_in=True)


def _float(name: str) -> _Node:
    """A float kind: wasmtime-py takes only float; the wire may bring a whole-number int."""

    def encode(value: Any) -> Any:
        if isinstance(value, float):
            return value
        raise _Bad(f"expected {name}, got {_got(value)}")

    def decode(value: Any) -> Any:
        if type(value) is float:
            return value
        if type(value) is int:
            return float(value)
        raise _Bad(f"expected {name}, got {_got(value)}")

    return _Node(encode, decode, same_out=True)


def _char() -> _Node:
    def check(value: Any) -> Any:
        if isinstance(value, str) and len(value) == 1:
            return value
        got = f"string of {len(value)} characters" if isinstance(value, str) else _got(value)
        raise _Bad(f"expected char (a string of 1 character), got {got}")

    return _Node(check, check, same_out=True, same_in=True)


def _names(what: str, names: Iterable[str]) -> str:
    return f"{what} {', '.join(names)}"


def _enum(names: list[str]) -> _Node:
    known = frozenset(names)
    listing = _names("cases:", names)

    def check(value: Any) -> Any:
        if isinstance(value, str):
            if value in known:
                return value
            raise _Bad(f"unknown enum case {value!r} ({listing})")
        raise _Bad(f"expected an enum case name (string), got {_got(value)}")

    return _Node(check, check, same_out=True, same_in=True)


def _flags(names: list[str]) -> _Node:
    known = frozenset(names)
    listing = _names("flags:", names)

    def check_name(name: Any) -> None:
        if not isinstance(name, str):
            raise _Bad(f"expected a flag name (string), got {_got(name)}")
        if name not in known:
            raise _Bad(f"unknown flag {name!r} ({listing})")

    def encode(value: Any) -> Any:
        if not isinstance(value, set | frozenset):
            raise _Bad(f"expected a set of flag names, got {_got(value)}")
        for name in value:
            check_name(name)
        return sorted(value)

    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise _Bad(f"expected an array of flag names, got {_got(value)}")
        _convert_list(check_name, value, copy=False)
        flags = set(value)
        if len(flags) != len(value):
            raise _Bad("a flag is named more than once")
        return flags

    return _Node(encode, decode)


# -- lists, tuples, records ------------------------------------------------------


def _first_failure(pairs: Iterable[tuple[Convert, Any]]) -> int:
    """The index of the first item that fails to convert (converters are pure)."""
    for index, (convert, item) in enumerate(pairs):
        try:
            convert(item)
        except _Bad:
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
    except _Bad as bad:
        bad.segments.append(f"[{_first_failure(zip(repeat(convert), items))}]")
        raise


def _convert_fixed(converts: tuple[Convert, ...], items: Any, copy: bool) -> Any:
    """Item i converted by converts[i] (the caller checked the length), as _convert_list."""
    try:
        if not copy:
            for convert, item in zip(converts, items, strict=True):
                convert(item)
            return items
        return [convert(item) for convert, item in zip(converts, items, strict=True)]
    except _Bad as bad:
        bad.segments.append(f"[{_first_failure(zip(converts, items, strict=True))}]")
        raise


def _bytes() -> _Node:
    return _checked("bin (list<u8>)", bytes)


def _list(element: _Node) -> _Node:
    encode_item, decode_item = element.encode, element.decode
    copy_out, copy_in = not element.same_out, not element.same_in

    def encode(value: Any) -> Any:
        if not isinstance(value, list):
            raise _Bad(f"expected a list, got {_got(value)}")
        return _convert_list(encode_item, value, copy_out)

    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise _Bad(f"expected an array, got {_got(value)}")
        return _convert_list(decode_item, value, copy_in)

    return _Node(encode, decode, same_out=element.same_out, same_in=element.same_in)


def _tuple(elements: list[_Node]) -> _Node:
    n = len(elements)
    encoders = tuple(e.encode for e in elements)
    decoders = tuple(e.decode for e in elements)
    same_out = all(e.same_out for e in elements)
    same_in = all(e.same_in for e in elements)

    def encode(value: Any) -> Any:
        if not isinstance(value, tuple) or len(value) != n:
            raise _Bad(f"expected a tuple of {n}, got {_got(value)}")
        # msgpack writes tuples as arrays: a checked tuple goes out as it is.
        return _convert_fixed(encoders, value, copy=not same_out)

    def decode(value: Any) -> Any:
        if type(value) is not list or len(value) != n:
            raise _Bad(f"expected an array of {n}, got {_got(value)}")
        return tuple(_convert_fixed(decoders, value, copy=not same_in))

    return _Node(encode, decode, same_out=same_out)


def _record(fields: list[tuple[str, _Node]]) -> _Node:
    encoders = tuple((name, node.encode) for name, node in fields)
    decoders = tuple((name, node.decode) for name, node in fields)
    known = frozenset(name for name, _ in fields)

    def encode(value: Any) -> Any:
        wire = {}
        for name, convert in encoders:
            item = getattr(value, name, _MISSING)
            if item is _MISSING:
                raise _Bad(f"expected a record with field {name!r}, got {_got(value)}")
            try:
                wire[name] = convert(item)
            except _Bad as bad:
                bad.segments.append("." + name)
                raise
        return wire

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise _Bad(f"expected a map (record), got {_got(value)}")
        record = wc.Record()
        attrs = record.__dict__  # what setattr would fill: Record has no __setattr__
        for name, convert in decoders:
            item = value.get(name, _MISSING)
            if item is _MISSING:
                raise _Bad(f"missing field {name!r}")
            try:
                attrs[name] = convert(item)
            except _Bad as bad:
                bad.segments.append("." + name)
                raise
        if len(value) != len(decoders):
            extra = sorted(repr(key) for key in value if key not in known)
            raise _Bad(f"unknown field(s) {', '.join(extra)}")
        return record

    return _Node(encode, decode)


# -- variant, option, result ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Case:
    """One case: its payload's converters (None: no payload) and Python classes."""

    name: str
    node: _Node | None
    classes: tuple[type, ...]


def _classes(ty: wc.ValType | None) -> frozenset[type]:
    """The classes wasmtime-py represents a case's payload with (object: no payload)."""
    if ty is None:
        return frozenset({object})
    found: set[type] = set()
    ty.add_classes(found)
    return frozenset(found)


def _tagged(classes: list[frozenset[type]]) -> bool:
    """wasmtime-py's rule: Variant objects iff the cases' classes overlap."""
    seen: set[type] = set()
    for case in classes:
        if case & seen:
            return True
        seen |= case
    return False


def _overlaps(later: tuple[type, ...], earlier: tuple[type, ...]) -> bool:
    return any(issubclass(a, b) for a in later for b in earlier)


class _Cases:
    """Which case a wasmtime-py value is, and the wasmtime-py value of a decoded case."""

    __slots__ = ("_by_name", "_by_type", "_listing", "_shadows", "cases", "kind", "tagged")

    def __init__(self, kind: str, cases: list[_Case], tagged: bool) -> None:
        self.kind = kind
        self.cases = cases
        self.tagged = tagged
        self._by_name = {case.name: case for case in reversed(cases)}
        self._listing = _names("cases:", (case.name for case in cases))
        # Untagged classes are disjoint, so a value's exact class names its case.
        self._by_type: dict[type, _Case] = {}
        for case in [] if tagged else cases:
            for cls in case.classes if case.node is not None else (type(None),):
                self._by_type[cls] = case
        self._shadows = {} if tagged else self._find_shadows()

    def _find_shadows(self) -> dict[str, list[tuple[str, tuple[type, ...]]]]:
        """Per case, the earlier cases wasmtime-py might take its values for."""
        shadows: dict[str, list[tuple[str, tuple[type, ...]]]] = {}
        for i, case in enumerate(self.cases):
            for earlier in self.cases[:i]:
                if earlier.node is not None and _overlaps(case.classes, earlier.classes):
                    shadows.setdefault(case.name, []).append((earlier.name, earlier.classes))
        return shadows

    def named(self, tag: Any) -> _Case:
        """The case a tag names; the tag may come from the network, so anything goes."""
        case = self._by_name.get(tag) if isinstance(tag, str) else None
        if case is not None:
            return case
        if isinstance(tag, str):
            raise _Bad(f"unknown {self.kind} case {tag!r} ({self._listing})")
        raise _Bad(f"expected a {self.kind} case name (string), got {_got(tag)}")

    def select(self, value: Any) -> tuple[_Case, Any]:
        """The case a wasmtime-py value is, and its payload."""
        if self.tagged:
            if not isinstance(value, wc.Variant):
                raise _Bad(f"expected a Variant ({self.kind}), got {_got(value)}")
            return self.named(value.tag), value.payload
        case = self._by_type.get(type(value))
        if case is not None:
            return case, value
        for case in self.cases:  # wasmtime-py's own rule, for subclasses
            if value is None if case.node is None else isinstance(value, case.classes):
                return case, value
        raise _Bad(f"{_got(value)} fits no case of this {self.kind} ({self._listing})")

    def lift(self, case: _Case, payload: Any) -> Any:
        """The wasmtime-py value of a decoded case."""
        if self.tagged:
            return wc.Variant(case.name, payload)
        for earlier, classes in self._shadows.get(case.name, ()):
            if isinstance(payload, classes):
                raise _Bad(
                    f"wasmtime-py cannot pass case {case.name!r} of this {self.kind} with this "
                    f"value: it would read it as case {earlier!r}"
                )
        return payload


def _cases(kind: str, cases: list[tuple[str, wc.ValType | None, str]]) -> _Cases:
    """Compile the payloads (`segment`: their place on the wire) and classify the cases."""
    nodes = [None if ty is None else _within(segment, _compile, ty) for _, ty, segment in cases]
    classes = [_classes(ty) for _, ty, _ in cases]
    built = [
        _Case(name, node, tuple(c))
        for (name, _, _), node, c in zip(cases, nodes, classes, strict=True)
    ]
    return _Cases(kind, built, _tagged(classes))


def _payload(case: _Case) -> _Node:
    assert case.node is not None
    return case.node


def _variant(ty: wc.VariantType) -> _Node:
    cases = _cases("variant", [(name, payload, "[1]") for name, payload in ty.cases])

    def encode(value: Any) -> Any:
        case, payload = cases.select(value)
        if case.node is None:
            return [case.name]
        return [case.name, _within("[1]", case.node.encode, payload)]

    def decode(value: Any) -> Any:
        if type(value) is not list or not 1 <= len(value) <= 2:
            raise _Bad(f"expected [case] or [case, payload] (variant), got {_got(value)}")
        case = _within("[0]", cases.named, value[0])
        if case.node is None:
            if len(value) != 1:
                raise _Bad(f"case {case.name!r} has no payload, got one")
            return cases.lift(case, None)
        if len(value) != 2:
            raise _Bad(f"case {case.name!r} needs a payload, got none")
        return cases.lift(case, _within("[1]", case.node.decode, value[1]))

    return _Node(encode, decode)


def _option(ty: wc.OptionType) -> _Node:
    cases = _cases("option", [("none", None, "[0]"), ("some", ty.payload, "[0]")])
    none, some = cases.cases
    inner = _payload(some)

    def encode(value: Any) -> Any:
        if cases.tagged:
            case, value = cases.select(value)
            if case is none:
                return None
        elif value is None:
            return None
        return [_within("[0]", inner.encode, value)]

    def decode(value: Any) -> Any:
        if value is None:
            return cases.lift(none, None)
        if type(value) is list and len(value) == 1:
            return cases.lift(some, _within("[0]", inner.decode, value[0]))
        raise _Bad(f"expected nil or [value] (option), got {_got(value)}")

    return _Node(encode, decode)


def _result(ty: wc.ResultType) -> _Node:
    cases = _cases("result", [("ok", ty.ok, ".ok"), ("err", ty.err, ".err")])

    def encode(value: Any) -> Any:
        case, payload = cases.select(value)
        if case.node is None:
            return {case.name: None}
        return {case.name: _within("." + case.name, case.node.encode, payload)}

    def decode(value: Any) -> Any:
        if type(value) is not dict or len(value) != 1:
            raise _Bad(f'expected {{"ok": value}} or {{"err": value}} (result), got {_got(value)}')
        ((tag, payload),) = value.items()
        case = cases.named(tag)
        if case.node is None:
            if payload is not None:
                raise _Bad(f"case {tag!r} has no payload: expected nil, got {_got(payload)}")
            return cases.lift(case, None)
        return cases.lift(case, _within("." + case.name, case.node.decode, payload))

    return _Node(encode, decode)


# -- compiling a type ----------------------------------------------------------------

_SCALARS: dict[type, _Node] = {
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

_UNSENDABLE: dict[type, str] = {
    wc.OwnType: "a resource handle (own<...>)",
    wc.BorrowType: "a resource handle (borrow<...>)",
    wc.FutureType: "a future",
    wc.StreamType: "a stream",
    wc.ErrorContext: "an error-context",
}


def _compile(ty: wc.ValType) -> _Node:
    """The converters for one wasmtime-py ValType (walks the type once)."""
    scalar = _SCALARS.get(type(ty))
    if scalar is not None:
        return scalar
    if isinstance(ty, wc.ListType):
        element = ty.element
        return _bytes() if isinstance(element, wc.U8) else _list(_within("[]", _compile, element))
    if isinstance(ty, wc.RecordType):
        return _record([(name, _within("." + name, _compile, f)) for name, f in ty.fields])
    if isinstance(ty, wc.TupleType):
        return _tuple([_within(f"[{i}]", _compile, e) for i, e in enumerate(ty.elements)])
    if isinstance(ty, wc.EnumType):
        return _enum(ty.names)
    if isinstance(ty, wc.FlagsType):
        return _flags(ty.names)
    if isinstance(ty, wc.VariantType):
        return _variant(ty)
    if isinstance(ty, wc.OptionType):
        return _option(ty)
    if isinstance(ty, wc.ResultType):
        return _result(ty)
    what = _UNSENDABLE.get(type(ty), f"a {type(ty).__name__}")
    raise _Bad(f"{what} cannot cross hosts; pass plain data instead")


def _compile_at(root: str, ty: wc.ValType) -> _Node:
    try:
        return _compile(ty)
    except _Bad as bad:
        raise bad.error(root) from None


# -- the codec of a function ---------------------------------------------------------


class WireCodec:
    """Encodes and decodes one function's parameters and result (see the module doc).

    Build it once per function type with ``for_func``; it holds no per-call
    state, so one codec serves any number of threads.
    """

    __slots__ = ("_param_decoders", "_param_encoders", "_result")

    def __init__(self, params: list[_Node], result: _Node | None) -> None:
        self._param_encoders = tuple(node.encode for node in params)
        self._param_decoders = tuple(node.decode for node in params)
        self._result = result

    @classmethod
    def for_func(cls, func_type: wc.FuncType) -> WireCodec:
        """Compile a function type; WireError if a parameter or the result cannot cross hosts."""
        params = [_compile_at(f"params[{i}]", ty) for i, (_, ty) in enumerate(func_type.params)]
        result = func_type.result
        return cls(params, None if result is None else _compile_at("result", result))

    def encode_params(self, values: tuple[Any, ...]) -> bytes:
        """The wire form of a call's arguments, wasmtime-py values in declaration order."""
        wire = self._convert_params(self._param_encoders, values, "a tuple")
        return _pack("params", wire)

    def decode_params(self, data: bytes) -> tuple[Any, ...]:
        """A call's arguments, ready to pass to the component's Func or FastFunc."""
        return tuple(
            self._convert_params(self._param_decoders, _unpack("params", data), "an array")
        )

    @staticmethod
    def _convert_params(converts: tuple[Convert, ...], values: Any, kind: str) -> list[Any]:
        if not isinstance(values, list | tuple) or len(values) != len(converts):
            n = len(converts)
            expected = f"{kind} of {n} parameter{'' if n == 1 else 's'}"
            raise WireError(f"params: expected {expected}, got {_got(values)}", "params")
        try:
            converted: list[Any] = _convert_fixed(converts, values, copy=True)
            return converted
        except _Bad as bad:
            index = bad.segments.pop()  # "[i]", added by _convert_fixed
            raise bad.error("params" + index) from None

    def encode_result(self, value: Any) -> bytes:
        """The wire form of a call's result (None for a function without one)."""
        if self._result is None:
            if value is not None:
                raise WireError(
                    f"result: the function returns nothing, got {_got(value)}", "result"
                )
            return _pack("result", None)
        try:
            wire = self._result.encode(value)
        except _Bad as bad:
            raise bad.error("result") from None
        return _pack("result", wire)

    def decode_result(self, data: bytes) -> Any:
        """A call's result as the component's Func would have returned it."""
        value = _unpack("result", data)
        if self._result is None:
            if value is not None:
                raise WireError(f"result: expected nil (no result), got {_got(value)}", "result")
            return None
        try:
            return self._result.decode(value)
        except _Bad as bad:
            raise bad.error("result") from None
