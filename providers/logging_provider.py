"""The logging provider: ``wasi:logging/logging`` into the host's structured log.

Every record carries the component id, so one host log can be filtered per
component. Guest stdout/stderr land here too, line by line.
"""

from __future__ import annotations

import logging

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
    component_log.log(
        LEVELS.get(level, logging.INFO),
        "[%s] %s%s",
        component_id,
        f"{context}: " if context else "",
        message,
        extra={"component_id": component_id, "log_context": context},
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
