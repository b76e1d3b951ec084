"""The logging provider: ``wasi:logging/logging`` into the host's structured log.

Every record carries the component id, so one host log can be filtered per
component. Guest stdout/stderr land here too, line by line.

What a guest writes is not trusted to look like anything: its context and
message are escaped (``lattice.redact.printable``: a newline becomes ``\\n``,
an ESC ``\\x1b``), so each record is one line that starts with the component's
``[id]`` prefix, and no guest can write a line that passes for the host's own
(``"\\n2026-01-01 ERROR host: ..."``) or repaint the terminal showing the log.

A guest may log on every request (a line of stdout each), so a record costs
no more than it must: nothing is escaped for a level the host does not show,
and the record is made directly (``Logger.makeRecord``), with this module as
its caller, rather than by ``Logger.log``, which walks the stack to find the
caller of every record.
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
    number = LEVELS.get(level, logging.INFO)
    if component_log.isEnabledFor(number):
        _log(number, component_id, printable(component_id), printable(context), message)


def _log(level: int, component_id: str, shown_id: str, shown_context: str, message: str) -> None:
    """One record of a component's, its id and context already escaped."""
    record = component_log.makeRecord(
        component_log.name,
        level,
        _CALLER.co_filename,
        _CALLER.co_firstlineno,
        "[%s] %s%s",
        (shown_id, f"{shown_context}: " if shown_context else "", printable(message)),
        None,
        _CALLER.co_name,
        {"component_id": component_id, "log_context": shown_context},
    )
    component_log.handle(record)


# Where every component record comes from, as Logger.log would have found it.
_CALLER = log_from_component.__code__


class OutputLines:
    """Collects a guest's stdout or stderr bytes and logs whole lines."""

    MAX_LINE = 8192

    def __init__(self, component_id: str, stream: str) -> None:
        self.component_id = component_id
        self.stream = stream
        self._level = LEVELS["warn" if stream == "stderr" else "info"]
        self._shown_id = printable(component_id)
        self._shown_stream = printable(stream)
        self._pending = b""

    def write(self, data: bytes) -> None:
        self._pending += data
        while b"\n" in self._pending or len(self._pending) > self.MAX_LINE:
            line, sep, rest = self._pending.partition(b"\n")
            if not sep:
                line, rest = self._pending[: self.MAX_LINE], self._pending[self.MAX_LINE :]
            self._pending = rest
            if component_log.isEnabledFor(self._level):
                text = line.decode(errors="replace")
                _log(self._level, self.component_id, self._shown_id, self._shown_stream, text)
