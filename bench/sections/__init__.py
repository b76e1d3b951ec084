"""The registry of benchmark sections.

A section is a module with a one-line ``TITLE`` and ``run(config) -> Output``: its
tables, and the key figures the aims are judged on (``bench.aims``).
To add one, write ``bench/sections/NAME.py`` and list it here; the order here is
the order of a full run. Modules are imported only when selected, so a section's
heavy imports (or missing tools) never slow down or break the others. A section too big
for one module keeps a part of its own beside it (``NAME_lattice.py``: the lattice it
runs against); what several sections share lives in ``bench/`` (``bench.lattice_rig``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol, cast

from bench.aims import Figures
from bench.context import Config
from bench.table import Table

SECTIONS: dict[str, str] = {
    "http": "bench.sections.http",
    "calls": "bench.sections.calls",
    "control": "bench.sections.control",
    "controller": "bench.sections.controller",
    "reconcile": "bench.sections.reconcile",
    "distributed": "bench.sections.distributed",
    "dataplane": "bench.sections.dataplane",
}


@dataclass(frozen=True)
class Output:
    """What a section measured: tables to print, figures for the aims table."""

    tables: list[Table]
    figures: Figures = field(default_factory=dict)


class Section(Protocol):
    TITLE: str

    def run(self, config: Config) -> Output: ...


def load(name: str) -> Section:
    return cast(Section, importlib.import_module(SECTIONS[name]))
