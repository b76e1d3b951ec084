"""Arguments and results of component calls on the wire between hosts.

A linked call to a component on another host carries its arguments (and the
reply its result) as msgpack, shaped by the function's WIT types. Each host
compiles a function's type once (``WireCodec.for_func``) into one encoder and
one decoder closure per WIT type node, as ``host.runtime.fastcall`` does for calls.
This module walks the types (``_compile``) and builds the nodes that need more
of a type than its compiled children: variant, option and result, whose cases
follow wasmtime-py's class rules (see below). The other nodes are built in
``host.wire.types``.

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

from dataclasses import dataclass
from typing import Any

import msgpack
from wasmtime import component as wc

from host.errors import HostError
from host.wire.types import (
    SCALARS,
    Bad,
    Convert,
    Node,
    bytes_node,
    convert_fixed,
    enum_node,
    flags_node,
    kind_of,
    list_node,
    listed,
    record_node,
    tuple_node,
    within,
)

__all__ = ["WireCodec", "WireError"]


class WireError(HostError):
    """A value does not fit its WIT type, or a payload is not valid msgpack.

    ``path`` names the bad value in the wire document (``params[0].body``), so
    the sender can find it; the message starts with it.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


def _error(root: str, bad: Bad) -> WireError:
    """The WireError for a value that does not fit, `root` being its outermost place."""
    path = bad.path(root)
    return WireError(f"{path}: {bad.reason}", path)


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


# -- variant, option, result ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Case:
    """One case: its payload's converters (None: no payload) and Python classes."""

    name: str
    node: Node | None
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
        self._listing = listed("cases:", (case.name for case in cases))
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
            raise Bad(f"unknown {self.kind} case {tag!r} ({self._listing})")
        raise Bad(f"expected a {self.kind} case name (string), got {kind_of(tag)}")

    def select(self, value: Any) -> tuple[_Case, Any]:
        """The case a wasmtime-py value is, and its payload."""
        if self.tagged:
            if not isinstance(value, wc.Variant):
                raise Bad(f"expected a Variant ({self.kind}), got {kind_of(value)}")
            return self.named(value.tag), value.payload
        case = self._by_type.get(type(value))
        if case is not None:
            return case, value
        for case in self.cases:  # wasmtime-py's own rule, for subclasses
            if value is None if case.node is None else isinstance(value, case.classes):
                return case, value
        raise Bad(f"{kind_of(value)} fits no case of this {self.kind} ({self._listing})")

    def lift(self, case: _Case, payload: Any) -> Any:
        """The wasmtime-py value of a decoded case."""
        if self.tagged:
            return wc.Variant(case.name, payload)
        for earlier, classes in self._shadows.get(case.name, ()):
            if isinstance(payload, classes):
                raise Bad(
                    f"wasmtime-py cannot pass case {case.name!r} of this {self.kind} with this "
                    f"value: it would read it as case {earlier!r}"
                )
        return payload


def _cases(kind: str, cases: list[tuple[str, wc.ValType | None, str]]) -> _Cases:
    """Compile the payloads (`segment`: their place on the wire) and classify the cases."""
    nodes = [None if ty is None else within(segment, _compile, ty) for _, ty, segment in cases]
    classes = [_classes(ty) for _, ty, _ in cases]
    built = [
        _Case(name, node, tuple(c))
        for (name, _, _), node, c in zip(cases, nodes, classes, strict=True)
    ]
    return _Cases(kind, built, _tagged(classes))


def _payload(case: _Case) -> Node:
    assert case.node is not None
    return case.node


def _variant(ty: wc.VariantType) -> Node:
    cases = _cases("variant", [(name, payload, "[1]") for name, payload in ty.cases])

    def encode(value: Any) -> Any:
        case, payload = cases.select(value)
        if case.node is None:
            return [case.name]
        return [case.name, within("[1]", case.node.encode, payload)]

    def decode(value: Any) -> Any:
        if type(value) is not list or not 1 <= len(value) <= 2:
            raise Bad(f"expected [case] or [case, payload] (variant), got {kind_of(value)}")
        case = within("[0]", cases.named, value[0])
        if case.node is None:
            if len(value) != 1:
                raise Bad(f"case {case.name!r} has no payload, got one")
            return cases.lift(case, None)
        if len(value) != 2:
            raise Bad(f"case {case.name!r} needs a payload, got none")
        return cases.lift(case, within("[1]", case.node.decode, value[1]))

    return Node(encode, decode)


def _option(ty: wc.OptionType) -> Node:
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
        return [within("[0]", inner.encode, value)]

    def decode(value: Any) -> Any:
        if value is None:
            return cases.lift(none, None)
        if type(value) is list and len(value) == 1:
            return cases.lift(some, within("[0]", inner.decode, value[0]))
        raise Bad(f"expected nil or [value] (option), got {kind_of(value)}")

    return Node(encode, decode)


def _result(ty: wc.ResultType) -> Node:
    cases = _cases("result", [("ok", ty.ok, ".ok"), ("err", ty.err, ".err")])

    def encode(value: Any) -> Any:
        case, payload = cases.select(value)
        if case.node is None:
            return {case.name: None}
        return {case.name: within("." + case.name, case.node.encode, payload)}

    def decode(value: Any) -> Any:
        if type(value) is not dict or len(value) != 1:
            raise Bad(
                f'expected {{"ok": value}} or {{"err": value}} (result), got {kind_of(value)}'
            )
        ((tag, payload),) = value.items()
        case = cases.named(tag)
        if case.node is None:
            if payload is not None:
                raise Bad(f"case {tag!r} has no payload: expected nil, got {kind_of(payload)}")
            return cases.lift(case, None)
        return cases.lift(case, within("." + case.name, case.node.decode, payload))

    return Node(encode, decode)


# -- compiling a type ----------------------------------------------------------------

_UNSENDABLE: dict[type, str] = {
    wc.OwnType: "a resource handle (own<...>)",
    wc.BorrowType: "a resource handle (borrow<...>)",
    wc.FutureType: "a future",
    wc.StreamType: "a stream",
    wc.ErrorContext: "an error-context",
}


def _compile(ty: wc.ValType) -> Node:
    """The converters for one wasmtime-py ValType (walks the type once)."""
    scalar = SCALARS.get(type(ty))
    if scalar is not None:
        return scalar
    if isinstance(ty, wc.ListType):
        element = ty.element
        if isinstance(element, wc.U8):
            return bytes_node()
        return list_node(within("[]", _compile, element))
    if isinstance(ty, wc.RecordType):
        return record_node([(name, within("." + name, _compile, f)) for name, f in ty.fields])
    if isinstance(ty, wc.TupleType):
        return tuple_node([within(f"[{i}]", _compile, e) for i, e in enumerate(ty.elements)])
    if isinstance(ty, wc.EnumType):
        return enum_node(ty.names)
    if isinstance(ty, wc.FlagsType):
        return flags_node(ty.names)
    if isinstance(ty, wc.VariantType):
        return _variant(ty)
    if isinstance(ty, wc.OptionType):
        return _option(ty)
    if isinstance(ty, wc.ResultType):
        return _result(ty)
    what = _UNSENDABLE.get(type(ty), f"a {type(ty).__name__}")
    raise Bad(f"{what} cannot cross hosts; pass plain data instead")


def _compile_at(root: str, ty: wc.ValType) -> Node:
    try:
        return _compile(ty)
    except Bad as bad:
        raise _error(root, bad) from None


# -- the codec of a function ---------------------------------------------------------


class WireCodec:
    """Encodes and decodes one function's parameters and result (see the module doc).

    Build it once per function type with ``for_func``; it holds no per-call
    state, so one codec serves any number of threads.
    """

    __slots__ = ("_param_decoders", "_param_encoders", "_result")

    def __init__(self, params: list[Node], result: Node | None) -> None:
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
            raise WireError(f"params: expected {expected}, got {kind_of(values)}", "params")
        try:
            converted: list[Any] = convert_fixed(converts, values, copy=True)
            return converted
        except Bad as bad:
            index = bad.segments.pop()  # "[i]", added by convert_fixed
            raise _error("params" + index, bad) from None

    def encode_result(self, value: Any) -> bytes:
        """The wire form of a call's result (None for a function without one)."""
        if self._result is None:
            if value is not None:
                raise WireError(
                    f"result: the function returns nothing, got {kind_of(value)}", "result"
                )
            return _pack("result", None)
        try:
            wire = self._result.encode(value)
        except Bad as bad:
            raise _error("result", bad) from None
        return _pack("result", wire)

    def decode_result(self, data: bytes) -> Any:
        """A call's result as the component's Func would have returned it."""
        value = _unpack("result", data)
        if self._result is None:
            if value is not None:
                raise WireError(f"result: expected nil (no result), got {kind_of(value)}", "result")
            return None
        try:
            return self._result.decode(value)
        except Bad as bad:
            raise _error("result", bad) from None
