"""``wasi:cli`` for components the host serves WASI to itself.

The environment holds only what the component's config grants (keys
``env.NAME``, see ``host.runtime.bindings.granted_environment``); there are no
arguments and no working directory. stdin is empty; stdout and stderr go to the
host log line by line, tagged with the component id (as with wasmtime's own
WASI). There is no terminal. ``exit`` ends the call as a trap: a handler has no
process to end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from host.runtime import inline
from host.runtime.wasi.io import InputStream, OutputStream
from host.runtime.wasi.table import ResourceTable, WasiTrap
from host.runtime.wasi.values import Ok
from providers.logging_provider import OutputLines

__all__ = ["functions"]


class _LogSink:
    """An output stream's sink that writes whole lines to the host log at once."""

    def __init__(self, lines: OutputLines) -> None:
        self._lines = lines

    def write(self, chunk: bytes) -> None:
        # Held while a call on the event loop's thread may still be given up.
        inline.hold(self._lines.write, chunk)


def functions(
    table: ResourceTable, component_id: str, environment: Mapping[str, str]
) -> Mapping[str, Mapping[str, Callable[..., Any]]]:
    env = list(environment.items())

    def exit_(_s: Any, status: Any) -> None:
        outcome = "success" if isinstance(status, Ok) else "failure"
        raise WasiTrap(f"component {component_id} called exit ({outcome})")

    def exit_with_code(_s: Any, code: int) -> None:
        raise WasiTrap(f"component {component_id} called exit with code {code}")

    def output(stream: str) -> Callable[[Any], Any]:
        # The instance's, not the exchange's: guests keep their stdio handles.
        return lambda store: table.own(
            OutputStream(_LogSink(OutputLines(component_id, stream))), store
        )

    none: Callable[[Any], None] = lambda _s: None  # noqa: E731
    return {
        "wasi:cli/environment": {
            "get-environment": lambda _s: list(env),
            "get-arguments": lambda _s: [],
            "initial-cwd": none,
        },
        "wasi:cli/exit": {"exit": exit_, "exit-with-code": exit_with_code},
        "wasi:cli/stdin": {"get-stdin": lambda store: table.own(InputStream(None), store)},
        "wasi:cli/stdout": {"get-stdout": output("stdout")},
        "wasi:cli/stderr": {"get-stderr": output("stderr")},
        "wasi:cli/terminal-input": {},
        "wasi:cli/terminal-output": {},
        "wasi:cli/terminal-stdin": {"get-terminal-stdin": none},
        "wasi:cli/terminal-stdout": {"get-terminal-stdout": none},
        "wasi:cli/terminal-stderr": {"get-terminal-stderr": none},
    }
