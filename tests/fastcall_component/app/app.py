"""Guest side of the FastFunc test component: every export echoes its input.

Built with componentize-py against tests/fastcall_component/wit (world
`fastcall-test`). The host compares wasmtime-py's Func with FastFunc on it.
"""

from componentize_py_types import Ok, Result
from echo import Thing
from wit_world import exports
from wit_world.exports import echo
from wit_world.imports import host

_memory: list[str] = [""]


def _unwrap(x: Result) -> object:
    # A result export returns the ok payload and raises Err for the error case.
    if isinstance(x, Ok):
        return x.value
    raise x


class Echo(exports.Echo):
    def echo_sink(self, x: echo.KitchenSink) -> echo.KitchenSink:
        return x

    def echo_bytes(self, x: bytes) -> bytes:
        return x

    def echo_string(self, x: str) -> str:
        return x

    def echo_color(self, x: echo.Color) -> echo.Color:
        return x

    def echo_perms(self, x: echo.Perms) -> echo.Perms:
        return x

    def echo_shape(self, x: echo.Shape) -> echo.Shape:
        return x

    def echo_opt(self, x: str | None) -> str | None:
        return x

    def echo_opt_opt(self, x: object) -> object:
        return x

    def echo_res(self, x: Result) -> str:
        return _unwrap(x)  # type: ignore[return-value]

    def echo_res_unit(self, x: Result) -> None:
        _unwrap(x)

    def echo_res_bare(self, x: Result) -> None:
        _unwrap(x)

    def echo_res_same(self, x: Result) -> int:
        return _unwrap(x)  # type: ignore[return-value]

    def echo_tuple(self, x: tuple[int, str, float]) -> tuple[int, str, float]:
        return x

    def echo_headers(self, x: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return x

    def echo_list_opt(self, x: list[int | None]) -> list[int | None]:
        return x

    def echo_nested(self, x: list[bytes]) -> list[bytes]:
        return x

    def echo_char(self, x: str) -> str:
        return x

    def echo_f32(self, x: float) -> float:
        return x

    def echo_s64(self, x: int) -> int:
        return x

    def echo_u64(self, x: int) -> int:
        return x

    def many(
        self, a: int, b: str, c: bytes, d: echo.Point | None
    ) -> tuple[int, str, bytes, echo.Point | None]:
        return (a, b, c, d)

    def remember(self, x: str) -> None:
        _memory[0] = x

    def recall(self) -> str:
        return _memory[0]

    def fail(self, message: str) -> int:
        raise RuntimeError(message)

    def call_host(self, x: int) -> int:
        return host.double(x)

    def make_thing(self, n: int) -> echo.Thing:
        return Thing(n)

    def thing_value(self, t: echo.Thing) -> int:
        return t.value()

    def consume_thing(self, t: echo.Thing) -> int:
        return t.value() + 1
