"""Traces and metrics at the envelope boundary (HTTP in, NATS in and out).

Domain code never touches OpenTelemetry: the http-server provider opens a
server span per request, an invocation over NATS carries the W3C trace context
in its headers (``inject_headers`` / ``server_span``), and the host records a
span, a duration and a count per component call. So one HTTP request through a
component, on to a component on another host, is one trace.

``setup(service, traces=...)`` picks the exporter: ``console`` (development),
``otlp`` (OTLP/HTTP; endpoint from the standard OTEL_EXPORTER_OTLP_* variables),
``file:PATH`` (JSON lines, one span per line: used by the tests), or none.
Without ``setup`` every call here is a cheap no-op: the hot path (one HTTP request,
one component call) then skips span and metric bookkeeping entirely.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

TRACER = "wasmlattice"
_tracer = trace.get_tracer(TRACER)
_meter = metrics.get_meter(TRACER)
_invocations = _meter.create_counter("wasmlattice.component.invocations", unit="1")
_errors = _meter.create_counter("wasmlattice.component.errors", unit="1")
_duration = _meter.create_histogram("wasmlattice.component.duration", unit="ms")
_active = _meter.create_up_down_counter("wasmlattice.component.active_instances", unit="1")


# Set by setup(): nothing is recorded unless an exporter was asked for.
_enabled = {"traces": False, "metrics": False}
_exporters: dict[str, str | None] = {"traces": None, "metrics": None}


class JsonLinesExporter(SpanExporter):
    """One JSON object per finished span, appended to a file (several processes may share)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            if ctx is None:
                continue
            parent = span.parent
            lines.append(
                json.dumps(
                    {
                        "name": span.name,
                        "trace_id": format(ctx.trace_id, "032x"),
                        "span_id": format(ctx.span_id, "016x"),
                        "parent_id": format(parent.span_id, "016x") if parent else None,
                        "kind": span.kind.name,
                        "attributes": dict(span.attributes or {}),
                        "status": span.status.status_code.name,
                    }
                )
            )
        with self._lock, self.path.open("a") as out:
            out.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS


def setup(service: str, traces: str | None, metrics_export: str | None = None) -> None:
    """Install exporters for this process (call once, at start)."""
    _exporters.update(traces=traces, metrics=metrics_export)
    resource = Resource.create({"service.name": service})
    if traces:
        provider = TracerProvider(resource=resource)
        if traces.startswith("file:"):
            provider.add_span_processor(
                SimpleSpanProcessor(JsonLinesExporter(Path(traces[len("file:") :])))
            )
        elif traces == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif traces == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            raise ValueError(f"unknown trace exporter {traces!r}: console, otlp or file:PATH")
        trace.set_tracer_provider(provider)
        _enabled["traces"] = True
    if metrics_export:
        exporter: MetricExporter
        if metrics_export == "console":
            exporter = ConsoleMetricExporter()
        elif metrics_export == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )

            exporter = OTLPMetricExporter()
        else:
            raise ValueError(f"unknown metrics exporter {metrics_export!r}: console or otlp")
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=10_000)
        use_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def exporters() -> tuple[str | None, str | None]:
    """The (traces, metrics) exporters given to ``setup``: child processes get the same."""
    return _exporters["traces"], _exporters["metrics"]


def use_meter_provider(provider: MeterProvider) -> None:
    """Record metrics into ``provider`` (an in-memory reader's, in tests)."""
    metrics.set_meter_provider(provider)
    _enabled["metrics"] = True


def shutdown() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def inject_headers() -> dict[str, str]:
    """The current trace context as message headers (traceparent, tracestate)."""
    carrier: dict[str, str] = {}
    if _enabled["traces"]:
        propagate.inject(carrier)
    return carrier


# Without an exporter the span functions return this one context manager: no
# generator and no frame per request (generator-based ones cost ~1-2 µs each on
# the HTTP hot path, which opens two). nullcontext holds no state: sharing is safe.
_NO_SPAN: AbstractContextManager[None] = nullcontext()


def server_span(name: str, headers: Mapping[str, str], host_id: str) -> AbstractContextManager[Any]:
    """A span continuing the trace a request's headers carry."""
    if not _enabled["traces"]:
        return _NO_SPAN
    return _server_span(name, headers, host_id)


@contextmanager
def _server_span(name: str, headers: Mapping[str, str], host_id: str) -> Iterator[Any]:
    parent = propagate.extract(dict(headers))
    token = context.attach(parent)
    try:
        with _tracer.start_as_current_span(
            name, kind=SpanKind.SERVER, attributes={"wasmlattice.host": host_id}
        ) as span:
            yield span
    finally:
        context.detach(token)


@contextmanager
def client_span(name: str) -> Iterator[dict[str, str]]:
    """A span around a request this process sends; yields the headers that carry it."""
    if not _enabled["traces"]:
        yield {}
        return
    with _tracer.start_as_current_span(name, kind=SpanKind.CLIENT):
        yield inject_headers()


def http_span(
    method: str, path: str, headers: Mapping[str, str], host_id: str
) -> AbstractContextManager[Any]:
    """The root (or continued) span of an incoming HTTP request."""
    if not _enabled["traces"]:
        return _NO_SPAN
    return _http_span(method, path, headers, host_id)


@contextmanager
def _http_span(method: str, path: str, headers: Mapping[str, str], host_id: str) -> Iterator[Any]:
    with _server_span(f"HTTP {method}", headers, host_id) as span:
        span.set_attribute("http.request.method", method)
        span.set_attribute("url.path", path)
        yield span


def component_call(component_id: str, function: str, host_id: str) -> AbstractContextManager[None]:
    """Span + metrics around one call into a component."""
    if not observing():
        return _NO_SPAN
    return _component_call(component_id, function, host_id)


@contextmanager
def _component_call(component_id: str, function: str, host_id: str) -> Iterator[None]:
    attributes = {"wasmlattice.component": component_id, "wasmlattice.host": host_id}
    with _tracer.start_as_current_span(
        f"call {component_id} {function}", kind=SpanKind.INTERNAL, attributes=attributes
    ) as span:
        _invocations.add(1, attributes)
        _active.add(1, attributes)
        started = _now_ms()
        try:
            yield
        except Exception as exc:
            _errors.add(1, attributes)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            _active.add(-1, attributes)
            _duration.record(_now_ms() - started, attributes)


def observing() -> bool:
    """Whether component calls are recorded (spans or metrics)."""
    return _enabled["traces"] or _enabled["metrics"]


def record_component_call(
    component_id: str,
    function: str,
    host_id: str,
    started_ns: int,
    duration_ms: float,
    error: str | None,
) -> None:
    """What ``component_call`` records, for a call already made (``started_ns``: wall
    clock). A linked call made inside an attempt on the event loop's thread is
    recorded this way once the attempt stands: a given-up attempt runs again,
    and the call with it."""
    attributes = {"wasmlattice.component": component_id, "wasmlattice.host": host_id}
    if _enabled["traces"]:
        span = _tracer.start_span(
            f"call {component_id} {function}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=started_ns,
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=started_ns + int(duration_ms * 1_000_000))
    if _enabled["metrics"]:
        _invocations.add(1, attributes)
        if error is not None:
            _errors.add(1, attributes)
        _duration.record(duration_ms, attributes)


def _now_ms() -> float:
    return time.perf_counter() * 1000
