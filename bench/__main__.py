"""``python -m bench [SECTION ...]``: run the selected sections (default: all), print tables.

The run ends with the aims table (``bench.aims``) whenever a section that measures an aim ran:
the figures the sections returned, each beside its aim.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from bench.aims import AIMS, Figure, Measured, aims_table
from bench.context import Config
from bench.machine import load_average, machine_table
from bench.sections import SECTIONS, load
from bench.table import render


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Checked here, not with argparse choices: those reject an empty nargs="*" list.
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    if args.list:
        for name in SECTIONS:
            print(f"{name:<12} {load(name).TITLE}")
        return 0
    # SIGTERM normally ends Python without running finally blocks; as SystemExit it
    # unwinds them, so every section still stops the processes it started.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    config = Config(rounds=args.rounds, duration_s=args.duration)
    started = time.monotonic()
    print(render(machine_table()))
    selected = args.sections or list(SECTIONS)
    figures: dict[Figure, Measured] = {}
    for name in selected:
        section = load(name)
        print(f"## {name}: {section.TITLE}\n", flush=True)
        output = section.run(config)
        for table in output.tables:
            print(render(table), flush=True)
        figures.update(output.figures)
    if any(aim.section in selected for aim in AIMS):
        print("## aims\n")
        print(render(aims_table(figures)), flush=True)
    print(f"Total bench time {time.monotonic() - started:.0f} s; load average at end "
          f"{load_average()}.")  # fmt: skip
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help=f"one or more of: {', '.join(SECTIONS)} (default: all)")  # fmt: skip
    parser.add_argument("--rounds", type=int, help="rounds per measurement (median reported)")
    parser.add_argument("--duration", type=float, help="seconds of load per measurement")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    return parser


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
