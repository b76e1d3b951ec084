"""Child processes of the bench: started here, stopped by pid, always.

Servers run in a process group of their own (``lattice.process``), so a Ctrl-C
in the terminal reaches only the bench, which then stops them itself (in
``finally`` blocks) instead of leaving half of them running.
"""

from __future__ import annotations

import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.context import LOG_DIR, REPO
from lattice.process import Process, spawn, stop_process

READY = "READY"


class BenchProcessError(Exception):
    pass


@dataclass
class Server:
    name: str
    process: Process  # text or bytes: the sections spawn hosts with text=True
    log_path: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def spawn_server(name: str, module: str, *args: str) -> Server:
    """Start ``python -m module args``; it prints ``READY <port>`` once it listens."""
    log_path = LOG_DIR / f"{name}.log"
    process = spawn(
        [sys.executable, "-m", module, *args],
        log=log_path,
        append=False,
        own_group=True,
        capture_stdout=True,
        cwd=REPO,
    )
    return Server(name, process, log_path)


def wait_ready(server: Server, timeout_s: float = 60.0) -> None:
    """Read the server's ``READY <port>`` line, or fail with the tail of its log."""
    stdout = server.process.stdout
    assert stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # select, so a server that hangs before printing cannot hang the bench.
        readable, _, _ = select.select([stdout], [], [], 0.1)
        if readable:
            line = stdout.readline().decode(errors="replace")
            if line.startswith(READY):
                server.port = int(line.split()[1])
                return
            if not line and server.process.poll() is not None:
                break
    raise BenchProcessError(f"server {server.name} did not start:\n{log_tail(server.log_path)}")


def stop(server: Server, timeout_s: float = 5.0) -> None:
    """SIGTERM by pid, then SIGKILL if it lingers; idempotent."""
    stop_process(server.process, timeout_s)
    if server.process.stdout is not None:
        server.process.stdout.close()


def run_json_child(module: str, args: list[str], timeout_s: float) -> str:
    """Run ``python -m module args`` to completion; returns its stdout (one JSON line)."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,  # subprocess.run kills the child on timeout
    )
    if proc.returncode != 0:
        raise BenchProcessError(f"{module} exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` of a process's log, for an error message (never raises)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"
