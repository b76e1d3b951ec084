"""A tiny table type and printer shared by every section, and its cell formats.

Tables print as Markdown pipe tables: readable in a terminal and pasted as-is
into docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.stats import median, percentile


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Columns of text, aligned left; the rest are numbers, aligned right.
    left_columns: set[int] = field(default_factory=lambda: {0})

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(cell) for cell in cells])


def render(table: Table) -> str:
    widths = [len(c) for c in table.columns]
    for row in table.rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    left = table.left_columns
    lines = [f"### {table.title}", "", _line(table.columns, widths, left)]
    lines.append("|" + "|".join(_rule(w, i in left) for i, w in enumerate(widths)) + "|")
    lines += [_line(row, widths, left) for row in table.rows]
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _line(cells: list[str], widths: list[int], left: set[int]) -> str:
    pairs = enumerate(zip(cells, widths, strict=True))
    padded = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in pairs]
    return "| " + " | ".join(padded) + " |"


def _rule(width: int, left: bool) -> str:
    return ":" + "-" * (width + 1) if left else "-" * (width + 1) + ":"


def fmt(value: float | None, digits: int = 1) -> str:
    """A number with fixed decimals and thousands separators; "-" when missing."""
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def p50_p90(values: Sequence[float]) -> str:
    """Median / p90 of the values, one decimal each."""
    ordered = sorted(values)
    return f"{fmt(median(ordered))} / {fmt(percentile(ordered, 90))}"


def median_range(values: Sequence[float], digits: int = 0) -> str:
    """Median with the min-max range of the rounds: few rounds make a p90 meaningless."""
    return f"{fmt(median(values), digits)} ({fmt(min(values), digits)}-{fmt(max(values), digits)})"


def verdict(value: float | None, goal: float, digits: int = 0) -> str:
    """Whether a measured value (ms) meets an aim of at most ``goal`` ms."""
    if value is None:
        return "-"
    return "met" if value <= goal else f"missed by {fmt(value - goal, digits)} ms"
