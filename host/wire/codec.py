"""Arguments and results of component calls on the wire between hosts.

A linked call to a component on another host carries its arguments (and the
reply its result) as msgpack, shaped by the function's WIT types. Each host
compiles a function's type once (``WireCodec.for_func``) into one encoder and
one decoder closure per WIT type node (``host.wire.type_codec``), as
``host.runtime.fastcall`` does for calls. This module is the entry point: it
specifies the format, turns a function's type into its codec, reads and writes
msgpack, and reports values that do not fit as ``WireError``.

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

Python values are exactly those of wasmtime-py (``host.runtime.wit_values``):
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

from typing import Any

import msgpack

from host.errors import HostError
from host.runtime.wit_types import ComponentFuncType, WitFunc, WitType, describe_func
from host.wire.type_codec import Bad, Convert, Node, convert_fixed, kind_of, node_for

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


def _node_at(root: str, ty: WitType) -> Node:
    try:
        return node_for(ty)
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
    def for_func(cls, func_type: ComponentFuncType | WitFunc) -> WireCodec:
        """Compile a function type; WireError if a parameter or the result cannot cross hosts.

        `func_type` is wasmtime's (``Func.type(store)``, an import's type) or the
        runtime's description of it.
        """
        described = func_type if isinstance(func_type, WitFunc) else describe_func(func_type)
        params = [_node_at(f"params[{i}]", ty) for i, (_, ty) in enumerate(described.params)]
        result = described.result
        return cls(params, None if result is None else _node_at("result", result))

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
