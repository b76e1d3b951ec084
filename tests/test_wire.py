"""host.wire.codec: every WIT kind round-trips, components take decoded values, bad input fails.

Function types come from real components: the FastFunc test component
(tests/fastcall_component, whose exports echo their input), the WAT ``echo``
HTTP handler, and small WAT components that only declare imports, for types
the echo component lacks (resources, cases wasmtime-py cannot tell apart).
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import wasmtime
from wasmtime import component as wc

from examples.build_components import build_all
from host.errors import HostError
from host.runtime.engine import WasmEngine
from host.runtime.fastcall import FastFunc
from host.runtime.wit_types import WitPrimitive, describe_func
from host.wire.codec import WireCodec, WireError
from providers.http_server import HttpRequest
from tests.test_fastcall import ECHO, ECHOES, HOST, POINT, SINK, _double, echo_guest, record, same

REPO = Path(__file__).resolve().parent.parent
HANDLER = "wasmlattice:http/incoming-handler@0.1.0"


# -- components -----------------------------------------------------------------------


class Echo:
    """One instance of the FastFunc test component, with each export's codec."""

    def __init__(self, engine: WasmEngine, component: wc.Component, linker: wc.Linker) -> None:
        self.store = wasmtime.Store(engine.engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        self.store.set_epoch_deadline(10**9)
        self.instance = linker.instantiate(self.store, component)
        self.parent = self.instance.get_export_index(self.store, ECHO)

    def func(self, name: str) -> wc.Func:
        index = self.instance.get_export_index(self.store, name, self.parent)
        assert index is not None, name
        func = self.instance.get_func(self.store, index)
        assert func is not None, name
        return func

    def codec(self, name: str) -> WireCodec:
        return WireCodec.for_func(self.func(name).type(self.store))

    def call(self, name: str, *args: Any) -> Any:
        return FastFunc(self.func(name), self.store)(self.store, *args)

    def call_slow(self, name: str, *args: Any) -> Any:
        func = self.func(name)
        result = func(self.store, *args)
        func.post_return(self.store)
        return result


@pytest.fixture(scope="module")
def engine() -> Iterator[WasmEngine]:
    engine = WasmEngine(REPO / "build" / "test-compile-cache")
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="module")
def echo(engine: WasmEngine) -> Echo:
    component = engine.compile(echo_guest().read_bytes(), "fastcall-test")
    linker = wc.Linker(engine.engine)
    linker.add_wasip2()
    with linker.root() as root, root.add_instance(HOST) as host:
        host.add_func("double", _double)
    return Echo(engine, component, linker)


def _import_types(engine: WasmEngine, wat: str) -> dict[str, wc.FuncType]:
    """The function types a WAT component imports (it needs no implementation)."""
    component = wc.Component(engine.engine, f"(component {wat})")
    imports = component.type.imports(engine.engine)
    return {name: item.ty for name, item in imports.items() if isinstance(item.ty, wc.FuncType)}


# -- round trips ------------------------------------------------------------------------

EXTRA: list[tuple[str, Any]] = [
    ("echo-f32", math.nan),
    ("echo-f32", -math.inf),
    ("echo-shape", wc.Variant("circle", -0.0)),
    ("echo-tuple", (0, "", -1e-300)),
]
ALL = ECHOES + EXTRA
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(ALL)]


def _sink(**changes: Any) -> wc.Record:
    fields = {k.replace("-", "_"): v for k, v in vars(SINK).items()}
    return record(**{**fields, **changes})


SINKS = [
    _sink(maybe=None, shape=wc.Variant("empty"), perms=set(), color="red"),
    _sink(shape=wc.Variant("named", "ü"), some_bytes=b"", points=[]),
    _sink(shape=wc.Variant("circle", 0.5), a_char="\0", a_string=""),
]


@pytest.mark.parametrize(("name", "arg"), ALL, ids=IDS)
def test_every_kind_round_trips(echo: Echo, name: str, arg: Any) -> None:
    codec = echo.codec(name)
    assert same(codec.decode_params(codec.encode_params((arg,))), (arg,))
    assert same(codec.decode_result(codec.encode_result(arg)), arg)


@pytest.mark.parametrize("sink", SINKS)
def test_record_variations_round_trip(echo: Echo, sink: wc.Record) -> None:
    codec = echo.codec("echo-sink")
    assert same(codec.decode_params(codec.encode_params((sink,))), (sink,))


def test_several_params_and_no_params(echo: Echo) -> None:
    codec = echo.codec("many")
    for args in [(7, "seven", b"\x07" * 7, POINT), (0, "", b"", None)]:
        assert same(codec.decode_params(codec.encode_params(args)), args)
        assert same(codec.decode_result(codec.encode_result(args)), args)
    recall, remember = echo.codec("recall"), echo.codec("remember")
    assert recall.decode_params(recall.encode_params(())) == ()
    assert remember.decode_result(remember.encode_result(None)) is None
    assert remember.encode_result(None) == msgpack.packb(None)


# -- against wasmtime -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "arg"), ALL, ids=IDS)
def test_decoded_params_call_the_component_like_the_originals(
    echo: Echo, name: str, arg: Any
) -> None:
    codec = echo.codec(name)
    decoded = codec.decode_params(codec.encode_params((arg,)))
    direct = echo.call_slow(name, arg)
    assert same(echo.call_slow(name, *decoded), direct)
    assert same(echo.call(name, *decoded), direct)
    # The result wasmtime-py lifted crosses the wire unchanged too.
    assert same(codec.decode_result(codec.encode_result(direct)), direct)


def test_hello_request_reaches_a_real_handler(engine: WasmEngine) -> None:
    """The HTTP request record: a dataclass encodes, the decoded Record calls the handler."""
    wasm = build_all(REPO / "build" / "components", only=["echo"], log=None)["echo"]
    component = engine.compile(wasm.read_bytes(), "echo")
    store = wasmtime.Store(engine.engine)
    store.set_epoch_deadline(10**9)
    instance = wc.Linker(engine.engine).instantiate(store, component)
    parent = instance.get_export_index(store, HANDLER)
    index = instance.get_export_index(store, "handle", parent)
    assert index is not None
    func = instance.get_func(store, index)
    assert func is not None
    codec = WireCodec.for_func(func.type(store))
    request = HttpRequest("POST", "/x", "a=1", [("accept", "*/*"), ("x-ü", "✓")], b"\0body")
    (decoded,) = codec.decode_params(codec.encode_params((request,)))
    assert type(decoded) is wc.Record
    assert vars(decoded) == dataclasses.asdict(request)
    direct = func(store, request)
    func.post_return(store)
    via_wire = func(store, decoded)
    func.post_return(store)
    assert same(via_wire, direct)
    assert vars(direct)["body"] == b"\0body"
    assert same(codec.decode_result(codec.encode_result(direct)), direct)


# -- the wire format ----------------------------------------------------------------------

_POINT = {"x": 3, "y": -4}

# (export, Python value, its wire document): the format other languages implement.
FORMAT: list[tuple[str, Any, Any]] = [
    ("echo-bytes", b"\x00\xff", b"\x00\xff"),
    ("echo-string", "héllo", "héllo"),
    ("echo-char", "🎉", "🎉"),
    ("echo-color", "blue-ish", "blue-ish"),
    ("echo-perms", {"write", "exec-all", "read"}, ["exec-all", "read", "write"]),
    ("echo-perms", set(), []),
    ("echo-shape", wc.Variant("rect", POINT), ["rect", _POINT]),
    ("echo-shape", wc.Variant("empty"), ["empty"]),
    ("echo-shape", wc.Variant("circle", 1.5), ["circle", 1.5]),
    ("echo-opt", None, None),
    ("echo-opt", "", [""]),
    ("echo-opt-opt", wc.Variant("none"), None),
    ("echo-opt-opt", wc.Variant("some", None), [None]),
    ("echo-opt-opt", wc.Variant("some", 7), [[7]]),
    ("echo-res", "fine", {"ok": "fine"}),
    ("echo-res", 42, {"err": 42}),
    ("echo-res-unit", None, {"ok": None}),
    ("echo-res-unit", "bad", {"err": "bad"}),
    ("echo-res-bare", wc.Variant("err"), {"err": None}),
    ("echo-res-same", wc.Variant("ok", 1), {"ok": 1}),
    ("echo-tuple", (255, "x", 2.5), [255, "x", 2.5]),
    ("echo-headers", [("a", "b")], [["a", "b"]]),
    ("echo-list-opt", [1, None], [[1], None]),
    ("echo-nested", [b"", b"a"], [b"", b"a"]),
    ("echo-u64", 2**64 - 1, 2**64 - 1),
    ("echo-f32", 0.5, 0.5),
]


@pytest.mark.parametrize(("name", "value", "wire"), FORMAT)
def test_wire_format(echo: Echo, name: str, value: Any, wire: Any) -> None:
    codec = echo.codec(name)
    # Byte for byte, so the format cannot drift unnoticed.
    assert codec.encode_params((value,)) == msgpack.packb([wire])
    assert codec.encode_result(value) == msgpack.packb(wire)
    assert same(codec.decode_params(msgpack.packb([wire])), (value,))


def test_wire_format_of_a_record_and_params(echo: Echo) -> None:
    codec = echo.codec("many")
    data = codec.encode_params((7, "seven", b"\x07", POINT))
    assert data == msgpack.packb([7, "seven", b"\x07", [_POINT]])
    sink = msgpack.unpackb(echo.codec("echo-sink").encode_result(SINK))
    assert list(sink) == list(vars(SINK))  # WIT field names, in WIT order
    assert sink["shape"] == ["rect", _POINT]
    assert sink["perms"] == ["exec-all", "read"]
    assert sink["maybe"] == ["present"]


def test_foreign_encoders_may_write_whole_floats_as_ints(echo: Echo) -> None:
    codec = echo.codec("echo-tuple")
    assert same(codec.decode_params(msgpack.packb([[1, "x", 2]])), ((1, "x", 2.0),))
    assert same(echo.codec("echo-f32").decode_result(msgpack.packb(3)), 3.0)
    single = msgpack.packb([0.5], use_single_float=True)
    assert same(echo.codec("echo-f32").decode_params(single), (0.5,))


# -- bad input from the network -------------------------------------------------------------

_REMOVE = object()


def _sink_wire(echo: Echo, **changes: Any) -> bytes:
    """The echo-sink params with some fields of the record replaced (or removed: _REMOVE)."""
    fields = msgpack.unpackb(echo.codec("echo-sink").encode_result(SINK))
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is _REMOVE:
            del fields[name]
        else:
            fields[name] = value
    return bytes(msgpack.packb([fields]))


# (export, params document, the WireError's message)
BAD_PARAMS: list[tuple[str, Any, str | None]] = [
    ("echo-string", "x", "params: expected an array of 1 parameter, got string"),
    ("echo-string", [], "params: expected an array of 1 parameter, got array of 0"),
    ("echo-string", ["a", "b"], "params: expected an array of 1 parameter, got array of 2"),
    ("echo-string", [5], "params[0]: expected string, got int"),
    ("echo-string", [b"x"], "params[0]: expected string, got bin"),
    ("echo-string", [None], "params[0]: expected string, got nil"),
    ("echo-bytes", [[1, 2]], "params[0]: expected bin (list<u8>), got array of 2"),
    ("echo-bytes", ["x"], "params[0]: expected bin (list<u8>), got string"),
    ("echo-headers", [[["a", "b"], ["c", 1]]], "params[0][1][1]: expected string, got int"),
    ("echo-headers", [[["a", "b"], ["c"]]], "params[0][1]: expected an array of 2, got array of 1"),
    ("echo-headers", [{"a": "b"}], "params[0]: expected an array, got map"),
    ("echo-tuple", [[1, "x"]], "params[0]: expected an array of 3, got array of 2"),
    ("echo-tuple", [[256, "x", 1.0]], "params[0][0]: 256 is out of range for u8"),
    ("echo-tuple", [[-1, "x", 1.0]], "params[0][0]: -1 is out of range for u8"),
    ("echo-tuple", [[1, "x", "1.0"]], "params[0][2]: expected f64, got string"),
    ("echo-tuple", [[True, "x", 1.0]], "params[0][0]: expected u8, got bool"),
    ("echo-tuple", [[1.0, "x", 1.0]], "params[0][0]: expected u8, got float"),
    ("echo-s64", [2**63], f"params[0]: {2**63} is out of range for s64"),
    ("echo-s64", [-(2**63)], None),
    ("echo-u64", [-1], "params[0]: -1 is out of range for u64"),
    (
        "echo-char",
        ["ab"],
        "params[0]: expected char (a string of 1 character), got string of 2 characters",
    ),
    (
        "echo-char",
        [""],
        "params[0]: expected char (a string of 1 character), got string of 0 characters",
    ),
    ("echo-char", [97], "params[0]: expected char (a string of 1 character), got int"),
    ("echo-f32", [None], "params[0]: expected f32, got nil"),
    (
        "echo-color",
        ["purple"],
        "params[0]: unknown enum case 'purple' (cases: red, green, blue-ish)",
    ),
    ("echo-color", [0], "params[0]: expected an enum case name (string), got int"),
    (
        "echo-perms",
        [["read", "bogus"]],
        "params[0][1]: unknown flag 'bogus' (flags: read, write, exec-all)",
    ),
    ("echo-perms", [["read", "read"]], "params[0]: a flag is named more than once"),
    ("echo-perms", [[1]], "params[0][0]: expected a flag name (string), got int"),
    ("echo-perms", ["read"], "params[0]: expected an array of flag names, got string"),
    (
        "echo-shape",
        [["nope", 1]],
        "params[0][0]: unknown variant case 'nope' (cases: circle, rect, empty, named, tag)",
    ),
    ("echo-shape", [[1, 1]], "params[0][0]: expected a variant case name (string), got int"),
    ("echo-shape", [["circle"]], "params[0]: case 'circle' needs a payload, got none"),
    ("echo-shape", [["empty", None]], "params[0]: case 'empty' has no payload, got one"),
    ("echo-shape", [["circle", "x"]], "params[0][1]: expected f64, got string"),
    ("echo-shape", [["rect", {"x": 1}]], "params[0][1]: missing field 'y'"),
    ("echo-shape", [[]], "params[0]: expected [case] or [case, payload] (variant), got array of 0"),
    (
        "echo-shape",
        ["circle"],
        "params[0]: expected [case] or [case, payload] (variant), got string",
    ),
    ("echo-opt", ["x"], "params[0]: expected nil or [value] (option), got string"),
    ("echo-opt", [[]], "params[0]: expected nil or [value] (option), got array of 0"),
    ("echo-opt", [[1]], "params[0][0]: expected string, got int"),
    ("echo-opt-opt", [[[1, 2]]], "params[0][0]: expected nil or [value] (option), got array of 2"),
    ("echo-opt-opt", [[[-1]]], "params[0][0][0]: -1 is out of range for u32"),
    ("echo-res", [{"ok": 1}], "params[0].ok: expected string, got int"),
    ("echo-res", [{"err": "x"}], "params[0].err: expected u32, got string"),
    (
        "echo-res",
        [{"ok": "a", "err": 1}],
        'params[0]: expected {"ok": value} or {"err": value} (result), got map',
    ),
    ("echo-res", [{"maybe": "a"}], "params[0]: unknown result case 'maybe' (cases: ok, err)"),
    (
        "echo-res",
        [["ok", "a"]],
        'params[0]: expected {"ok": value} or {"err": value} (result), got array of 2',
    ),
    ("echo-res-unit", [{"ok": 1}], "params[0]: case 'ok' has no payload: expected nil, got int"),
    ("echo-list-opt", [[[1], "x"]], "params[0][1]: expected nil or [value] (option), got string"),
    ("echo-nested", [[b"a", "b"]], "params[0][1]: expected bin (list<u8>), got string"),
    (
        "many",
        [1, "x", b"", {"x": 1, "y": 2}],
        "params[3]: expected nil or [value] (option), got map",
    ),
    ("many", [1, "x", b"", [7]], "params[3][0]: expected a map (record), got int"),
    ("many", [1, "x", b"", [{"x": 1, "y": 2, "z": 3}]], "params[3][0]: unknown field(s) 'z'"),
    ("many", [1, "x", b"", [{"x": 1}]], "params[3][0]: missing field 'y'"),
    (
        "many",
        [1, "x", b"", [{"x": 1, "y": 2**31}]],
        f"params[3][0].y: {2**31} is out of range for s32",
    ),
    ("many", [1, 2, b"", None], "params[1]: expected string, got int"),
]


@pytest.mark.parametrize(
    ("name", "doc", "message"),
    BAD_PARAMS,
    ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_PARAMS)],
)
def test_bad_params_are_wire_errors_with_the_path(
    echo: Echo, name: str, doc: Any, message: str | None
) -> None:
    codec = echo.codec(name)
    data = msgpack.packb(doc)
    if message is None:  # a boundary value that is fine
        codec.decode_params(data)
        return
    with pytest.raises(WireError) as info:
        codec.decode_params(data)
    assert str(info.value) == message
    assert isinstance(info.value, HostError)
    assert message.startswith(info.value.path + ":")


def test_bad_fields_of_a_record_name_the_field(echo: Echo) -> None:
    codec = echo.codec("echo-sink")
    cases: dict[str, dict[str, Any]] = {
        "params[0].a-u8: 256 is out of range for u8": {"a_u8": 256},
        "params[0].points[1].x: expected s32, got string": {"points": [_POINT, {"x": "0", "y": 0}]},
        "params[0].shape[1].y: expected s32, got float": {"shape": ["rect", {"x": 1, "y": 1.0}]},
        "params[0]: missing field 'color'": {"color": _REMOVE},
        "params[0]: unknown field(s) 'extra', 'more'": {"extra": 1, "more": 2},
        "params[0].maybe: expected nil or [value] (option), got string": {"maybe": "x"},
    }
    for message, changes in cases.items():
        with pytest.raises(WireError, match=rf"^{re.escape(message)}$"):
            codec.decode_params(_sink_wire(echo, **changes))


def test_the_request_headers_example(engine: WasmEngine) -> None:
    types = _import_types(
        engine,
        """
        (type $req (record (field "method" string) (field "headers"
            (list (tuple string string))) (field "body" (list u8))))
        (import "request" (type $r (eq $req)))
        (import "handle" (func (param "request" $r)))
        """,
    )
    codec = WireCodec.for_func(types["handle"])
    doc = [{"method": "GET", "headers": [["a", "b"], ["c", "d"], ["e", 5]], "body": b""}]
    with pytest.raises(WireError) as info:
        codec.decode_params(msgpack.packb(doc))
    assert str(info.value) == "params[0].headers[2][1]: expected string, got int"
    assert info.value.path == "params[0].headers[2][1]"


GARBAGE: list[bytes] = [
    b"",
    b"\xc1",  # a never-used type byte
    b"\x91",  # an array of 1 with nothing in it
    b"\x91\xa1",  # a truncated string
    b"\x91\xa1x\x00",  # trailing data
    b"\xdd\xff\xff\xff\xff",  # an array claiming 4G elements
    b"\x91\xd9\x02\xff\xfe",  # invalid UTF-8
    b"\x81\x01\x02",  # a map with an int key
    b"\x91" * 5000 + b"\xc0",  # deeper than msgpack nests
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_is_a_wire_error(echo: Echo, data: bytes) -> None:
    with pytest.raises(WireError, match=r"^params: not valid msgpack \(.+\)$"):
        echo.codec("echo-string").decode_params(data)
    with pytest.raises(WireError, match=r"^result: not valid msgpack"):
        echo.codec("echo-string").decode_result(data)


def test_truncated_messages_are_wire_errors(echo: Echo) -> None:
    codec = echo.codec("echo-sink")
    data = codec.encode_params((SINK,))
    for end in range(len(data)):
        with pytest.raises(WireError, match=r"^params: not valid msgpack"):
            codec.decode_params(data[:end])


def test_msgpack_extensions_are_refused(echo: Echo) -> None:
    codec = echo.codec("echo-string")
    for ext in [msgpack.ExtType(1, b"x"), msgpack.Timestamp(1)]:
        with pytest.raises(
            WireError, match=r"^params\[0\]: expected string, got (ExtType|Timestamp)$"
        ):
            codec.decode_params(msgpack.packb([ext]))


def test_bad_results_are_wire_errors(echo: Echo) -> None:
    with pytest.raises(WireError, match=r"^result\[1\]: expected f64, got string$"):
        echo.codec("echo-shape").decode_result(msgpack.packb(["circle", "x"]))
    with pytest.raises(WireError, match=r"^result: expected nil \(no result\), got int$"):
        echo.codec("remember").decode_result(msgpack.packb(1))
    with pytest.raises(WireError, match=r"^result: the function returns nothing, got int$"):
        echo.codec("remember").encode_result(1)


def test_mutated_messages_never_fail_otherwise(echo: Echo) -> None:
    """Random damage to a valid message: a WireError, or values the component takes."""
    codec = echo.codec("echo-sink")
    valid = codec.encode_params((SINK,))
    rng = random.Random(1234)
    decoded = 0
    for _ in range(3000):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            params = codec.decode_params(bytes(data))
        except WireError:
            continue
        decoded += 1
        echo.call("echo-sink", *params)  # anything that decodes, wasmtime accepts
    assert decoded > 100


# -- bad values on the sending side -----------------------------------------------------------

BAD_VALUES: list[tuple[str, tuple[Any, ...], str]] = [
    ("echo-string", (), "params: expected a tuple of 1 parameter, got tuple of 0"),
    ("echo-string", (5,), "params[0]: expected string, got int"),
    ("echo-bytes", (bytearray(b"x"),), "params[0]: expected bin (list<u8>), got bytearray"),
    ("echo-headers", ([("a", 1)],), "params[0][0][1]: expected string, got int"),
    ("echo-headers", ((("a", "b"),),), "params[0]: expected a list, got tuple of 1"),
    ("echo-tuple", ([1, "x", 1.0],), "params[0]: expected a tuple of 3, got array of 3"),
    ("echo-tuple", ((256 + 7, "x", 1.0),), "params[0][0]: 263 is out of range for u8"),
    ("echo-tuple", ((1, "x", 1),), "params[0][2]: expected f64, got int"),
    ("echo-u64", (True,), "params[0]: expected u64, got bool"),
    ("echo-shape", ("circle",), "params[0]: expected a Variant (variant), got string"),
    (
        "echo-shape",
        (wc.Variant("nope", 1),),
        "params[0]: unknown variant case 'nope' (cases: circle, rect, empty, named, tag)",
    ),
    ("echo-shape", (wc.Variant("circle", "x"),), "params[0][1]: expected f64, got string"),
    ("echo-opt", (5,), "params[0][0]: expected string, got int"),
    (
        "echo-opt-opt",
        (wc.Variant("some", wc.Variant("x")),),
        "params[0][0][0]: expected u32, got Variant",
    ),
    ("echo-opt-opt", (None,), "params[0]: expected a Variant (option), got nil"),
    ("echo-res", (1.5,), "params[0]: float fits no case of this result (cases: ok, err)"),
    ("echo-perms", (["read"],), "params[0]: expected a set of flag names, got array of 1"),
    ("echo-perms", ({"bogus"},), "params[0]: unknown flag 'bogus' (flags: read, write, exec-all)"),
    (
        "echo-color",
        ("purple",),
        "params[0]: unknown enum case 'purple' (cases: red, green, blue-ish)",
    ),
    (
        "echo-char",
        ("ab",),
        "params[0]: expected char (a string of 1 character), got string of 2 characters",
    ),
    (
        "echo-sink",
        (record(a_bool=True),),
        "params[0]: expected a record with field 'an-s8', got Record",
    ),
    (
        "echo-string",
        ("\ud800",),
        "params: cannot encode ('utf-8' codec can't encode character '\\ud800' in position 0: "
        "surrogates not allowed)",
    ),
    (
        "many",
        (1, "x", b"", record(x=1)),
        "params[3][0]: expected a record with field 'y', got Record",
    ),
]


@pytest.mark.parametrize(
    ("name", "args", "message"),
    BAD_VALUES,
    ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_VALUES)],
)
def test_bad_values_are_wire_errors_when_encoding(
    echo: Echo, name: str, args: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(WireError) as info:
        echo.codec(name).encode_params(args)
    assert str(info.value) == message


# -- what cannot cross, and what wasmtime-py cannot tell apart -----------------------------


def test_resources_are_refused(echo: Echo, engine: WasmEngine) -> None:
    with pytest.raises(WireError) as info:
        echo.codec("make-thing")
    assert str(info.value) == (
        "result: a resource handle (own<...>) cannot cross hosts; pass plain data instead"
    )
    with pytest.raises(WireError, match=r"^params\[0\]: a resource handle \(borrow<\.\.\.>\)"):
        echo.codec("thing-value")
    types = _import_types(
        engine,
        """
        (import "res" (type $res (sub resource)))
        (type $rec (record (field "n" u32) (field "handles" (list (own $res)))))
        (import "rec" (type $r (eq $rec)))
        (import "f" (func (param "a" u32) (param "b" (option $r))))
        """,
    )
    with pytest.raises(WireError, match=r"^params\[1\]\[0\]\.handles\[\]: a resource handle"):
        WireCodec.for_func(types["f"])


@pytest.fixture(scope="module")
def untagged(engine: WasmEngine) -> dict[str, wc.FuncType]:
    """Variants whose cases wasmtime-py represents as bare values."""
    return _import_types(
        engine,
        """
        (type $num (variant (case "int" u32) (case "flag" bool)))
        (import "num" (type $n (eq $num)))
        (type $maybe (variant (case "nothing") (case "count" u32) (case "text" string)))
        (import "maybe" (type $m (eq $maybe)))
        (type $res (result u32 (error bool)))
        (import "res" (type $r (eq $res)))
        (type $opt (variant (case "o" (option u32)) (case "s" string)))
        (import "opt" (type $o (eq $opt)))
        (import "num-f" (func (param "x" $n) (result $n)))
        (import "maybe-f" (func (param "x" $m) (result $m)))
        (import "res-f" (func (param "x" $r) (result $r)))
        (import "opt-f" (func (param "x" $o) (result $o)))
        (import "small" (func (param "a" s8) (param "b" s16) (param "c" u16) (param "d" f64)))
        """,
    )


def test_untagged_variants_round_trip(untagged: dict[str, wc.FuncType]) -> None:
    maybe = WireCodec.for_func(untagged["maybe-f"])
    for value, wire in [(None, ["nothing"]), (5, ["count", 5]), ("x", ["text", "x"])]:
        assert maybe.encode_params((value,)) == msgpack.packb([wire])
        assert same(maybe.decode_params(msgpack.packb([wire])), (value,))
    num = WireCodec.for_func(untagged["num-f"])
    # The exact class picks the case where wasmtime-py's isinstance rule would take
    # True for a u32: a value wasmtime-py lifted keeps its case.
    assert num.encode_result(True) == msgpack.packb(["flag", True])
    assert num.encode_result(1) == msgpack.packb(["int", 1])
    assert same(num.decode_result(msgpack.packb(["int", 1])), 1)
    opt = WireCodec.for_func(untagged["opt-f"])
    assert opt.encode_result(None) == msgpack.packb(["o", None])
    assert opt.encode_result(3) == msgpack.packb(["o", [3]])
    assert opt.encode_result("s") == msgpack.packb(["s", "s"])


def test_cases_wasmtime_py_would_misread_are_refused(untagged: dict[str, wc.FuncType]) -> None:
    """A bare value wasmtime-py would lower as an earlier case: refused, not changed."""
    bad = [
        (
            "num-f",
            ["flag", True],
            "case 'flag' of this variant with this value: it would read it as case 'int'",
        ),
        (
            "res-f",
            {"err": False},
            "case 'err' of this result with this value: it would read it as case 'ok'",
        ),
        (
            "opt-f",
            ["s", "x"],
            "case 's' of this variant with this value: it would read it as case 'o'",
        ),
    ]
    for name, wire, reason in bad:
        codec = WireCodec.for_func(untagged[name])
        with pytest.raises(WireError) as info:
            codec.decode_params(msgpack.packb([wire]))
        assert str(info.value) == f"params[0]: wasmtime-py cannot pass {reason}"


def test_codec_from_the_runtime_description(untagged: dict[str, wc.FuncType]) -> None:
    """for_func also takes the runtime's plain description of the type, with the same result."""
    described = describe_func(untagged["small"])
    assert [ty for _, ty in described.params] == [
        WitPrimitive("s8"),
        WitPrimitive("s16"),
        WitPrimitive("u16"),
        WitPrimitive("f64"),
    ]
    codec = WireCodec.for_func(described)
    args = (-1, 2, 3, 0.5)
    assert codec.encode_params(args) == WireCodec.for_func(untagged["small"]).encode_params(args)
    num = WireCodec.for_func(describe_func(untagged["num-f"]))
    assert num.encode_result(True) == msgpack.packb(["flag", True])


def test_integer_ranges(untagged: dict[str, wc.FuncType]) -> None:
    codec = WireCodec.for_func(untagged["small"])
    fine = (-128, -32768, 65535, 1.0)
    assert same(codec.decode_params(codec.encode_params(fine)), fine)
    for args, message in [
        ((128, 0, 0, 0.0), "params[0]: 128 is out of range for s8"),
        ((0, 32768, 0, 0.0), "params[1]: 32768 is out of range for s16"),
        ((0, 0, -1, 0.0), "params[2]: -1 is out of range for u16"),
    ]:
        with pytest.raises(WireError, match=rf"^{re.escape(message)}$"):
            codec.decode_params(msgpack.packb(list(args)))
        with pytest.raises(WireError, match=rf"^{re.escape(message)}$"):
            codec.encode_params(args)
