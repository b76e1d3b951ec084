"""The registry of benchmark sections.

A section is a module with a one-line ``TITLE`` and ``run(config) -> list[Table]``.
To add one, write ``bench/sections/NAME.py`` and list it here; the order here is
the order of a full run. Modules are imported only when selected, so a section's
heavy imports (or missing tools) never slow down or break the others. A section too big
for one module keeps a part of its own beside it (``NAME_lattice.py``: the lattice it
runs against); what several sections share lives in ``bench/`` (``bench.lattice_rig``).
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast

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


class Section(Protocol):
    TITLE: str

    def run(self, config: Config) -> list[Table]: ...


def load(name: str) -> Section:
    return cast(Section, importlib.import_module(SECTIONS[name]))
