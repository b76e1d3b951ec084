"""Component log records: what each carries, at which level, and what is shown.

``providers.logging_provider`` makes its records directly (not through
``Logger.log``) to keep a guest's per-request stdout line cheap; these pin down
that the records are still what ``Logger.log`` made: level per stream, the
``[id]`` prefix, the ``component_id``/``log_context`` extras, the caller, the
logger's level and filters respected, and the host's ``SafeFormatter`` output.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from lattice.redact import SafeFormatter
from providers import logging_provider
from providers.logging_provider import OutputLines, component_log, log_from_component


class _Caught(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """The records reaching a handler on the component logger (level DEBUG - 5)."""
    handler = _Caught()
    level = component_log.level
    component_log.addHandler(handler)
    component_log.setLevel(logging.DEBUG - 5)
    try:
        yield handler.records
    finally:
        component_log.removeHandler(handler)
        component_log.setLevel(level)


def test_stdout_is_info_and_stderr_a_warning(records: list[logging.LogRecord]) -> None:
    OutputLines("web", "stdout").write(b"hello\n")
    OutputLines("web", "stderr").write(b"oops\n")
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "[web] stdout: hello"),
        (logging.WARNING, "[web] stderr: oops"),
    ]
    assert [(r.component_id, r.log_context) for r in records] == [  # type: ignore[attr-defined]
        ("web", "stdout"),
        ("web", "stderr"),
    ]


def test_a_record_names_the_provider_as_its_caller(records: list[logging.LogRecord]) -> None:
    log_from_component("web", "debug", "", "no context")
    (record,) = records
    assert record.getMessage() == "[web] no context"
    assert record.name == "wasmlattice.component"
    assert record.pathname == logging_provider.__file__
    assert record.funcName == "log_from_component"
    assert record.exc_info is None and record.stack_info is None


def test_levels_the_logger_does_not_show_make_no_record(
    records: list[logging.LogRecord],
) -> None:
    component_log.setLevel(logging.WARNING)
    stdout, stderr = OutputLines("web", "stdout"), OutputLines("web", "stderr")
    stdout.write(b"dropped\n")
    log_from_component("web", "info", "ctx", "dropped too")
    stderr.write(b"kept\n")
    log_from_component("web", "trace", "ctx", "dropped as well")
    assert [r.getMessage() for r in records] == ["[web] stderr: kept"]
    # A line dropped for its level is still consumed: it does not come back later.
    component_log.setLevel(logging.INFO)
    stdout.write(b"next\n")
    assert [r.getMessage() for r in records][-1] == "[web] stdout: next"


def test_filters_on_the_logger_still_apply(records: list[logging.LogRecord]) -> None:
    def only_errors(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    component_log.addFilter(only_errors)
    try:
        log_from_component("web", "info", "", "filtered out")
        log_from_component("web", "error", "", "kept")
    finally:
        component_log.removeFilter(only_errors)
    assert [r.getMessage() for r in records] == ["[web] kept"]


def test_the_host_log_line_is_escaped_and_redacted(records: list[logging.LogRecord]) -> None:
    OutputLines("we\x1bb", "stdout").write(b"see https://user:pw@example.com/x\r\n")
    (record,) = records
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    handler.handle(record)
    assert stream.getvalue() == (
        "INFO wasmlattice.component: [we\\x1bb] stdout: see https://user:***@example.com/x\\r\n"
    )
