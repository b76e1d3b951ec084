"""``lattice.process``: the one "SIGTERM, wait, SIGKILL" every child process goes through."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lattice.process import process_alive, spawn, stop_process, stop_process_async

# Says it is ready once SIGTERM is ignored, then sleeps.
STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def test_a_child_that_ignores_sigterm_is_killed_and_reaped() -> None:
    child = spawn([sys.executable, "-c", STUBBORN], capture_stdout=True, own_group=True)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    started = time.monotonic()
    assert stop_process(child, timeout_s=0.5) is False  # it had to be killed
    assert time.monotonic() - started < 5
    assert child.returncode == -9 and not process_alive(child.pid)
    assert stop_process(child) is True  # idempotent: nothing left to stop
    child.stdout.close()


async def test_a_well_behaved_child_stops_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    child = spawn([sys.executable, "-c", "import time; print('hi'); time.sleep(60)"], log=log)
    assert await stop_process_async(child, timeout_s=10) is True
    assert child.returncode == -15
    assert log.exists()  # its directory was made for it
