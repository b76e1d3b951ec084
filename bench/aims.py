"""The aims of a run: key figures the sections measured, set against the issues' aims.

A section returns its tables and, beside them, the few figures an aim is judged on
(``Figures``: a ``Figure`` key to a ``Measured`` value with the numbers it came from).
``python -m bench`` collects them from every section it ran and ends with one table:
each aim, its measured value, the aim, met or missed. An aim whose section did not run
says which section measures it. No figure is parsed back out of printed text.

Where each figure comes from:

- the HTTP ratios, p99s and CPU per request: the dataplane section, which measures
  both contracts on a real host with 1 and with N data-plane processes, ``wasmtime
  serve`` with instance reuse and plain aiohttp in the same interleaved rounds; for
  each contract the host configuration with the most req/s is the one judged;
- the cross-host linked call p50: the distributed section;
- ``reconcile()`` of 1,000 apps x 100 hosts: the reconcile section, its slowest case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from bench.table import Table, fmt


class Figure(Enum):
    OWN_VS_WASMTIME_RPS = "own contract req/s / wasmtime serve req/s"
    WASI_VS_WASMTIME_RPS = "wasi:http req/s / wasmtime serve req/s"
    OWN_VS_WASMTIME_P99 = "own contract p99 / wasmtime serve p99"
    WASI_VS_WASMTIME_P99 = "wasi:http p99 / wasmtime serve p99"
    OWN_VS_PLAIN_CPU = "own contract server CPU per request / plain aiohttp's"
    WASI_VS_PLAIN_CPU = "wasi:http server CPU per request / plain aiohttp's"
    WASI_VS_OWN_RPS = "wasi:http req/s / own contract req/s"
    CROSS_HOST_P50_MS = "cross-host linked call p50, ms"
    RECONCILE_MS = "reconcile() of 1,000 apps x 100 hosts, ms"


@dataclass(frozen=True)
class Measured:
    value: float
    detail: str  # the numbers behind the value, e.g. "3,120 vs 4,050 req/s"


Figures = Mapping[Figure, Measured]


@dataclass(frozen=True)
class Aim:
    figure: Figure
    what: str
    goal: float
    at_least: bool  # met when value >= goal; otherwise when value <= goal
    unit: str  # "x" (a ratio) or " ms"
    section: str  # the section that measures it
    issue: int

    def met(self, value: float) -> bool:
        return value >= self.goal if self.at_least else value <= self.goal

    def show(self, value: float) -> str:
        # Ratios to the hundredth; a sub-millisecond aim to the microsecond.
        digits = 2 if self.unit == "x" else 3 if self.goal < 10 else 1
        return f"{fmt(value, digits)}{self.unit}"

    def goal_text(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.goal:g}{self.unit}"


AIMS = [
    Aim(Figure.OWN_VS_WASMTIME_RPS, "HTTP hello, own contract: req/s vs wasmtime serve",
        1.0, True, "x", "dataplane", 12),
    Aim(Figure.WASI_VS_WASMTIME_RPS, "HTTP hello, wasi:http: req/s vs wasmtime serve",
        1.0, True, "x", "dataplane", 12),
    Aim(Figure.OWN_VS_WASMTIME_P99, "HTTP hello, own contract: p99 vs wasmtime serve's",
        2.0, False, "x", "dataplane", 12),
    Aim(Figure.WASI_VS_WASMTIME_P99, "HTTP hello, wasi:http: p99 vs wasmtime serve's",
        2.0, False, "x", "dataplane", 12),
    Aim(Figure.OWN_VS_PLAIN_CPU, "server CPU per request, own contract vs plain aiohttp",
        2.0, False, "x", "dataplane", 12),
    Aim(Figure.WASI_VS_PLAIN_CPU, "server CPU per request, wasi:http vs plain aiohttp",
        2.0, False, "x", "dataplane", 12),
    Aim(Figure.CROSS_HOST_P50_MS, "cross-host linked call p50 on loopback",
        0.5, False, " ms", "distributed", 12),
    Aim(Figure.RECONCILE_MS, "reconcile() of 1,000 apps x 100 hosts (slowest case)",
        100.0, False, " ms", "reconcile", 12),
    Aim(Figure.WASI_VS_OWN_RPS, "HTTP hello, wasi:http vs own contract req/s",
        0.5, True, "x", "dataplane", 10),
]  # fmt: skip


def aims_table(figures: Figures) -> Table:
    table = Table(
        "Aims (issues 12 and 10)",
        ["aim", "measured", "aim value", "verdict", "from: the figures behind it"],
        left_columns={0, 3, 4},
    )
    for aim in AIMS:
        found = figures.get(aim.figure)
        if found is None:
            table.add(aim.what, "-", aim.goal_text(), f"not measured (run {aim.section})", "-")
            continue
        verdict = "met" if aim.met(found.value) else "missed"
        table.add(aim.what, aim.show(found.value), aim.goal_text(), verdict,
                  f"{aim.section}: {found.detail}")  # fmt: skip
    measured = [aim for aim in AIMS if aim.figure in figures]
    met = sum(aim.met(figures[aim.figure].value) for aim in measured)
    table.notes.append(f"{met} of {len(measured)} measured aims met, all figures from this run.")
    return table
