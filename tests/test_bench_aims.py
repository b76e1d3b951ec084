"""The bench's aims table: figures the sections return, judged against the issues' aims.

Pure: no bench section runs here (``make bench`` measures); these check the verdicts,
the rows of aims whose section did not run, and the Markdown the table prints as.
"""

from __future__ import annotations

from bench.aims import AIMS, Figure, Measured, aims_table
from bench.table import render


def _row(table_rows: list[list[str]], figure: Figure) -> list[str]:
    index = next(i for i, aim in enumerate(AIMS) if aim.figure is figure)
    return table_rows[index]


def test_every_figure_has_one_aim() -> None:
    assert sorted(aim.figure.name for aim in AIMS) == sorted(f.name for f in Figure)


def test_verdicts_follow_the_direction_of_each_aim() -> None:
    figures = {
        Figure.OWN_VS_WASMTIME_RPS: Measured(1.0, "at the aim"),  # >= 1.0: met
        Figure.WASI_VS_WASMTIME_RPS: Measured(0.99, "below"),  # >= 1.0: missed
        Figure.OWN_VS_WASMTIME_P99: Measured(2.5, "above"),  # <= 2.0: missed
        Figure.CROSS_HOST_P50_MS: Measured(0.42, "under"),  # <= 0.5 ms: met
        Figure.RECONCILE_MS: Measured(100.0, "at the aim"),  # <= 100 ms: met
    }
    table = aims_table(figures)
    verdicts = {f: _row(table.rows, f)[3] for f in figures}
    assert verdicts == {
        Figure.OWN_VS_WASMTIME_RPS: "met",
        Figure.WASI_VS_WASMTIME_RPS: "missed",
        Figure.OWN_VS_WASMTIME_P99: "missed",
        Figure.CROSS_HOST_P50_MS: "met",
        Figure.RECONCILE_MS: "met",
    }
    assert _row(table.rows, Figure.CROSS_HOST_P50_MS)[1:3] == ["0.420 ms", "<= 0.5 ms"]
    assert _row(table.rows, Figure.RECONCILE_MS)[4] == "reconcile: at the aim"
    assert table.notes == ["3 of 5 measured aims met, all figures from this run."]


def test_an_aim_whose_section_did_not_run_names_the_section() -> None:
    table = aims_table({Figure.RECONCILE_MS: Measured(40.0, "x")})
    row = _row(table.rows, Figure.CROSS_HOST_P50_MS)
    assert row[1] == "-"
    assert row[3] == "not measured (run distributed)"
    text = render(table)
    assert text.startswith("### Aims (issues 12 and 10)\n")
    assert "| reconcile() of 1,000 apps x 100 hosts (slowest case)" in text
