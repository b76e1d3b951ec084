"""The logging provider: ``wasi:logging/logging`` into the host's structured log.

Every record carries the component id, so one host log can be filtered per
component. Guest stdout/stderr land here too, line by line.

What a guest writes is not trusted to look like anything: its context and
message are escaped (``lattice.redact.printable``: a newline becomes ``\\n``,
an ESC ``\\x1b``), so each record is one line that starts with the component's
``[id]`` prefix, and no guest can write a line that passes for the host's own
(``"\\n2026-01-01 ERROR host: ..."``) or repaint the terminal showing the log.
"""

from __future__ import annotations

import logging

from lattice.redact import printable

LEVELS = {
    "trace": logging.DEBUG - 5,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

component_log = logging.getLogger("wasmlattice.component")


def log_from_component(component_id: str, level: str, context: str, message: str) -> None:
    shown_context = printable(context)
    component_log.log(
        LEVELS.get(level, logging.INFO),
        "[%s] %s%s",
        printable(component_id),
        f"{shown_context}: " if shown_context else "",
        printable(message),
        extra={"component_id": component_id, "log_context": shown_context},
    )


class OutputLines:
    """Collects a guest's stdout or stderr bytes and logs whole lines."""

    MAX_LINE = 8192

    def __init__(self, component_id: str, stream: str) -> None:
        self.component_id = component_id
        self.stream = stream
        self._pending = b""

    def write(self, data: bytes) -> None:
        self._pending += data
        while b"\n" in self._pending or len(self._pending) > self.MAX_LINE:
            line, sep, rest = self._pending.partition(b"\n")
            if not sep:
                line, rest = self._pending[: self.MAX_LINE], self._pending[self.MAX_LINE :]
            self._pending = rest
            level = "warn" if self.stream == "stderr" else "info"
            log_from_component(self.component_id, level, self.stream, line.decode(errors="replace"))
