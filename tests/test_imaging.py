"""Plain values lowered through an image (host.runtime.imaging): unit tests.

Calls through FastFunc, against wasmtime-py, are in tests/test_fastcall.py; here
the converter alone, lowered into a scratch slot and lifted back.
"""

from __future__ import annotations

from ctypes import addressof
from dataclasses import dataclass
from typing import Any

from host.runtime.c_api import ValImage, val_delete
from host.runtime.imaging import image_lowerer
from host.runtime.lowering import converter_for
from host.runtime.wit_types import WitList, WitOption, WitPrimitive, WitRecord, WitTuple
from host.runtime.wit_values import WitCases

STRING = WitPrimitive("string")
HEADERS = WitList(WitTuple((STRING, STRING)))
REQUEST = WitRecord(
    (
        ("method", STRING),
        ("path", STRING),
        ("headers", HEADERS),
        ("body", WitList(WitPrimitive("u8"))),
    )
)


@dataclass
class Request:
    method: str
    path: str
    headers: Any
    body: bytes


def _round_trip(lower: Any, val: Any) -> Any:
    slot = ValImage()
    address = addressof(slot)
    try:
        lower(None, val, slot, address, 0)
        return vars(converter_for(REQUEST).lift(slot, address, 0))
    finally:
        val_delete(address)


def test_plain_types_take_the_image_and_others_do_not() -> None:
    lower = converter_for(REQUEST).lower
    assert image_lowerer(REQUEST, lower) is not lower
    option = WitOption(WitCases("option", [("none", None), ("some", frozenset({str}))]), STRING)
    option_lower = converter_for(option).lower
    assert image_lowerer(option, option_lower) is option_lower


def test_image_matches_the_usual_lowering() -> None:
    usual = converter_for(REQUEST).lower
    imaged = image_lowerer(REQUEST, usual)
    request = Request("GET", "/ü", [("host", "x"), ("a", "")], b"\x00body\xff")
    assert _round_trip(imaged, request) == _round_trip(usual, request) == vars(request)


class _Reentrant:
    """A value whose `headers` lowers another value with the same lowerer meanwhile."""

    def __init__(self, lower: Any) -> None:
        self.method, self.path, self.body = "POST", "/outer", b"outer"
        self._lower = lower
        self.inner: Any = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        self.inner = _round_trip(self._lower, Request("GET", "/inner", [("i", "j")], b"in"))
        return [("outer", "yes")]


def test_a_reentrant_lowering_leaves_the_outer_image_intact() -> None:
    lower = image_lowerer(REQUEST, converter_for(REQUEST).lower)
    outer = _Reentrant(lower)
    lifted = _round_trip(lower, outer)
    assert lifted == {
        "method": "POST",
        "path": "/outer",
        "headers": [("outer", "yes")],
        "body": b"outer",
    }
    assert outer.inner == {
        "method": "GET",
        "path": "/inner",
        "headers": [("i", "j")],
        "body": b"in",
    }
