"""FastFunc returns exactly what wasmtime-py's Func returns, for every value kind.

The guest is tests/fastcall_component (a componentize-py app whose exports echo
their input). It is built once into build/fastcall-test/, named by the hash of
its sources and of the componentize-py version, so only source changes rebuild.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import math
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from wasmtime import component as wc

from examples.build_components import build_all
from host.runtime.bindings import Grants, build_linker
from host.runtime.engine import WasmEngine
from host.runtime.fastcall import FastFunc
from providers.http_server import HttpRequest
from tests.guests import build_guest

REPO = Path(__file__).resolve().parent.parent
ECHO = "fastcall:test/echo@0.1.0"
HOST = "fastcall:test/host@0.1.0"


# -- building and instantiating the guest ------------------------------------


def echo_guest() -> Path:
    """tests/fastcall_component, built (cached)."""
    return build_guest("fastcall", "fastcall-test")


def _double(_store: Any, x: int) -> int:
    if x >= 1000:
        raise ValueError(f"{x} is too big to double")
    return 2 * x


@dataclass
class Guest:
    engine: WasmEngine
    component: wc.Component
    linker: wc.Linker


@pytest.fixture(scope="module")
def guest() -> Iterator[Guest]:
    engine = WasmEngine(REPO / "build" / "test-compile-cache")
    try:
        component = engine.compile(echo_guest().read_bytes(), "fastcall-test")
        linker = wc.Linker(engine.engine)
        linker.add_wasip2()
        with linker.root() as root, root.add_instance(HOST) as host:
            host.add_func("double", _double)
        yield Guest(engine, component, linker)
    finally:
        engine.close()


class Instance:
    """One instance, with each export callable through Func and FastFunc."""

    def __init__(self, guest: Guest) -> None:
        self.store = wasmtime.Store(guest.engine.engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        self.store.set_epoch_deadline(10**9)
        self.instance = guest.linker.instantiate(self.store, guest.component)
        self.parent = self.instance.get_export_index(self.store, ECHO)

    def func(self, name: str) -> wc.Func:
        index = self.instance.get_export_index(self.store, name, self.parent)
        assert index is not None, name
        func = self.instance.get_func(self.store, index)
        assert func is not None, name
        return func

    def slow(self, name: str, *args: Any) -> Any:
        func = self.func(name)
        result = func(self.store, *args)
        func.post_return(self.store)
        return result

    def fast(self, name: str, *args: Any) -> Any:
        # No post_return: the call runs it (wasmtime >= 42); pool calls rely on that.
        return FastFunc(self.func(name), self.store)(self.store, *args)


@pytest.fixture
def inst(guest: Guest) -> Instance:
    return Instance(guest)


# -- values ---------------------------------------------------------------------


def record(**fields: Any) -> wc.Record:
    """A wasmtime-py Record; snake_case keywords become kebab-case field names."""
    out = wc.Record()
    for name, value in fields.items():
        setattr(out, name.replace("_", "-"), value)
    return out


def same(a: Any, b: Any) -> bool:
    """Equal values of identical types, all the way down (Record == is too lax)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, wc.Record):
        return list(vars(a)) == list(vars(b)) and all(same(vars(a)[k], vars(b)[k]) for k in vars(a))
    if isinstance(a, wc.Variant):
        return a.tag == b.tag and same(a.payload, b.payload)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def f32(x: float) -> float:
    return float(struct.unpack("f", struct.pack("f", x))[0])


POINT = record(x=3, y=-4)

SINK = record(
    a_bool=True,
    an_s8=-128,
    a_u8=255,
    an_s16=-32768,
    a_u16=65535,
    an_s32=-(2**31),
    a_u32=2**32 - 1,
    an_s64=-(2**63),
    a_u64=2**64 - 1,
    an_f32=1.5,
    an_f64=-2.25e300,
    a_char="🎉",
    a_string="héllo\0wörld",
    some_bytes=bytes(range(256)),
    points=[POINT, record(x=0, y=0)],
    maybe="present",
    shape=wc.Variant("rect", POINT),
    color="blue-ish",
    perms={"read", "exec-all"},
)

# (export, argument): each export returns its argument unchanged.
ECHOES: list[tuple[str, Any]] = [
    ("echo-sink", SINK),
    ("echo-bytes", b""),
    ("echo-bytes", b"\x00\xff"),
    ("echo-bytes", bytes(range(256)) * 400),
    # The last list<u8> the image arena holds (64 KiB: 2047 values after the root), then
    # the first it does not (lowered the usual way).
    ("echo-bytes", b"\x01" * 2047),
    ("echo-bytes", b"\x02" * 2048),
    ("echo-string", ""),
    ("echo-string", "plain"),
    ("echo-string", "héllo wörld ✓ 🎉 \0 end"),
    ("echo-string", "x" * 100_000),
    ("echo-color", "red"),
    ("echo-color", "blue-ish"),
    ("echo-perms", set()),
    ("echo-perms", {"read", "write", "exec-all"}),
    ("echo-shape", wc.Variant("circle", 1.5)),
    ("echo-shape", wc.Variant("rect", POINT)),
    ("echo-shape", wc.Variant("empty")),
    ("echo-shape", wc.Variant("named", "n")),
    ("echo-shape", wc.Variant("tag", "")),
    ("echo-opt", None),
    ("echo-opt", ""),
    ("echo-opt", "some"),
    ("echo-opt-opt", wc.Variant("none")),
    ("echo-opt-opt", wc.Variant("some", None)),
    ("echo-opt-opt", wc.Variant("some", 7)),
    ("echo-res", "fine"),
    ("echo-res", 42),
    ("echo-res-unit", None),
    ("echo-res-unit", "bad"),
    ("echo-res-bare", wc.Variant("ok")),
    ("echo-res-bare", wc.Variant("err")),
    ("echo-res-same", wc.Variant("ok", 1)),
    ("echo-res-same", wc.Variant("err", 2)),
    ("echo-tuple", (255, "x", 2.5)),
    ("echo-headers", []),
    ("echo-headers", [("content-type", "text/plain"), ("x-ü", "✓")]),
    # Overflows the image arena part-way through: lowered the usual way.
    ("echo-headers", [(f"name-{i}", "v" * 200) for i in range(300)]),
    ("echo-list-opt", []),
    ("echo-list-opt", [1, None, 2**32 - 1]),
    ("echo-nested", []),
    ("echo-nested", [b"", b"abc", bytes(range(256))]),
    ("echo-char", "a"),
    ("echo-char", "🎉"),
    ("echo-f32", 1.5),
    ("echo-f32", -0.0),
    ("echo-f32", math.inf),
    ("echo-s64", -(2**63)),
    ("echo-s64", 2**63 - 1),
    ("echo-u64", 0),
    ("echo-u64", 2**64 - 1),
]


@pytest.mark.parametrize(
    ("name", "arg"), ECHOES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ECHOES)]
)
def test_echo_matches_func(inst: Instance, name: str, arg: Any) -> None:
    slow = inst.slow(name, arg)
    fast = inst.fast(name, arg)
    assert same(fast, slow)
    assert same(fast, arg)


# Values wasmtime-py converts lossily or by wrapping: FastFunc must do the same.
LOSSY: list[tuple[str, Any, Any]] = [
    ("echo-f32", 0.1, f32(0.1)),
    ("echo-f32", 1e39, math.inf),
    ("echo-s64", 2**63, -(2**63)),
    ("echo-u64", -1, 2**64 - 1),
    ("echo-tuple", (256 + 7, "x", 1.0), (7, "x", 1.0)),
]


@pytest.mark.parametrize(("name", "arg", "expected"), LOSSY)
def test_lossy_values_match_func(inst: Instance, name: str, arg: Any, expected: Any) -> None:
    slow = inst.slow(name, arg)
    fast = inst.fast(name, arg)
    assert same(fast, slow)
    assert same(fast, expected)


def test_several_params_and_a_tuple_result(inst: Instance) -> None:
    for d in (None, POINT):
        args = (7, "seven", b"\x07" * 7, d)
        assert same(inst.fast("many", *args), inst.slow("many", *args))
        assert same(inst.fast("many", *args), args)


def test_no_params_and_no_result(inst: Instance) -> None:
    assert inst.fast("remember", "from fast") is None
    assert inst.slow("recall") == inst.fast("recall") == "from fast"
    assert inst.slow("remember", "from slow") is None
    assert inst.fast("recall") == "from slow"


def test_returned_record_is_a_wasmtime_record(inst: Instance) -> None:
    out = inst.fast("echo-sink", SINK)
    assert type(out) is wc.Record
    assert getattr(out, "some-bytes") == bytes(range(256))
    assert list(vars(out)) == list(vars(SINK))


def test_http_handler_matches_func(guest: Guest) -> None:
    """The pool's case: a dataclass request in, a Record response out."""
    wasm = build_all(REPO / "build" / "components", only=["hello"], log=None)["hello"]
    component = guest.engine.compile(wasm.read_bytes(), "hello")
    loop = asyncio.new_event_loop()
    try:
        linker = build_linker(guest.engine.engine, component, Grants("hello", loop))
        store = wasmtime.Store(guest.engine.engine)
        store.set_wasi(wasmtime.WasiConfig())
        store.set_epoch_deadline(10**9)
        instance = linker.instantiate(store, component)
        parent = instance.get_export_index(store, "wasmlattice:http/incoming-handler@0.1.0")
        index = instance.get_export_index(store, "handle", parent)
        assert index is not None
        func = instance.get_func(store, index)
        assert func is not None
        request = HttpRequest("POST", "/x", "a=1", [("accept", "*/*")], b"payload")
        slow = func(store, request)
        func.post_return(store)
        fast_func = FastFunc(func, store)
        fast = fast_func(store, request)  # no post_return: the call ran it (wasmtime >= 42)
    finally:
        loop.close()
    assert same(fast, slow)
    assert vars(fast)["status"] == 200
    assert vars(fast)["body"] == b"Hello from wasmlattice!\n"


# -- errors ------------------------------------------------------------------------

BAD: list[tuple[str, tuple[Any, ...]]] = [
    ("echo-opt-opt", (wc.Variant("some", wc.Variant("x")),)),
    ("echo-string", ()),
    ("echo-string", ("a", "b")),
    ("echo-string", (5,)),
    ("echo-bytes", ([1, 2],)),
    ("echo-bytes", (bytearray(b"x"),)),
    ("echo-headers", ([("a", 1)],)),
    ("echo-headers", ((("a", "b"),),)),
    ("echo-tuple", ((1, "x"),)),
    ("echo-tuple", ([1, "x", 1.0],)),
    ("echo-shape", ("circle",)),
    ("echo-shape", (wc.Variant("nope", 1),)),
    ("echo-shape", (wc.Variant("circle", "not a float"),)),
    ("echo-opt", (5,)),
    ("echo-perms", (["read"],)),
    ("echo-perms", ({1},)),
    ("echo-perms", ({"bogus"},)),
    ("echo-color", (3,)),
    ("echo-color", ("purple",)),
    ("echo-char", ("ab",)),
    ("echo-f32", (1,)),
    ("echo-u64", (1.0,)),
    ("echo-sink", (record(a_bool=True),)),
    ("echo-list-opt", ([1, "x"],)),
    ("echo-nested", ([b"a", "b"],)),
    ("many", (1, "x", b"", record(x=1))),
]


def _error(call: Any) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize(("name", "args"), BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_bad_values_fail_like_func(guest: Guest, name: str, args: tuple[Any, ...]) -> None:
    # Fresh instances: an error raised inside wasmtime leaves the instance unusable.
    fast = Instance(guest)
    error = _error(lambda: fast.fast(name, *args))
    assert error == _error(lambda: Instance(guest).slow(name, *args))
    if not issubclass(error[0], wasmtime.WasmtimeError):
        # Rejected while lowering: nothing half-lowered stays behind.
        assert fast.fast("echo-string", "still fine") == "still fine"


def test_guest_trap_raises_like_func(guest: Guest) -> None:
    slow = _error(lambda: Instance(guest).slow("fail", "boom"))
    fast = _error(lambda: Instance(guest).fast("fail", "boom"))
    assert fast == slow
    assert issubclass(fast[0], wasmtime.WasmtimeError)
    assert "unreachable" in fast[1]


def test_host_exception_is_reraised_like_func(guest: Guest) -> None:
    inst = Instance(guest)
    assert inst.fast("call-host", 21) == inst.slow("call-host", 21) == 42
    slow = _error(lambda: Instance(guest).slow("call-host", 5000))
    fast = _error(lambda: Instance(guest).fast("call-host", 5000))
    assert fast == slow == (ValueError, "5000 is too big to double")


# -- resources (converted by wasmtime-py's own code) -----------------------------------


def test_resources_round_trip(inst: Instance) -> None:
    fast_thing = inst.fast("make-thing", 7)
    slow_thing = inst.slow("make-thing", 8)
    assert type(fast_thing) is type(slow_thing) is wc.ResourceAny
    assert fast_thing.owned and slow_thing.owned
    # Borrowed: the handle stays usable.
    assert inst.fast("thing-value", fast_thing) == inst.slow("thing-value", fast_thing) == 7
    assert inst.fast("thing-value", slow_thing) == 8
    # Owned: the call takes the handle, as with Func.
    assert inst.fast("consume-thing", fast_thing) == 8
    assert inst.slow("consume-thing", slow_thing) == 9
    with pytest.raises(ValueError):
        inst.fast("thing-value", fast_thing)


# -- memory ---------------------------------------------------------------------------


_MALLINFO2_FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS.split()]


def _host_heap() -> int | None:
    """Bytes in use in the C heap (libwasmtime allocates there), or None off glibc.

    RSS would also count the guest's linear memory, which grows on its own as
    the Python interpreter inside the guest allocates.
    """
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


def test_calls_do_not_leak(inst: Instance) -> None:
    if _host_heap() is None:
        pytest.skip("needs glibc's mallinfo2")
    calls = [
        (FastFunc(inst.func(name), inst.store), arg)
        for name, arg in ECHOES
        if name not in {"echo-string", "echo-bytes"}  # keep the big ones out: faster
    ]

    def batch() -> tuple[int, int]:
        for _ in range(100):
            for func, arg in calls:
                func(inst.store, arg)
        gc.collect()
        return _host_heap() or 0, sys.getallocatedblocks()

    batch()  # warm up allocator pools and caches
    heap, blocks = batch()
    for _ in range(4):
        end_heap, end_blocks = batch()
    # ~16k calls: a leaked payload box (48 bytes) per call would be ~800 kB.
    assert end_heap - heap < 16 * 1024
    assert end_blocks - blocks < 100
