"""Child processes: spawn, stop by pid, notice a dead parent, turn signals into a stop.

Every process this project starts (the embedded nats-server, a host's provider
processes, the bench's servers, the tests' hosts and Redis) goes through here, so
the rules live in one place:

- ``spawn``: stdin is ``/dev/null``, output goes to a log file (appended, or
  started afresh), optionally in a session of its own (a new process group), so a
  Ctrl-C at the terminal reaches only us and we stop the child in order;
- ``stop_process``: SIGTERM, wait, then SIGKILL; always reaps; idempotent. It
  signals the ``Popen``'s own pid (never a name), and only while that child is
  unreaped, so a reused pid is never hit. ``stop_process_async`` does the same
  without blocking an event loop; ``kill_process`` is the SIGKILL alone;
- ``watch_parent``: for a child that must not outlive its parent even when the
  parent is SIGKILLed (it can then stop nothing): a dead parent's children are
  re-parented, so the child's parent pid changes;
- ``stop_on_signals``: SIGINT and SIGTERM call a function in the running loop
  (a graceful stop) instead of raising ``KeyboardInterrupt`` anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

STOP_TIMEOUT_S = 5.0
# How often a waiting stop or a parent watch looks again.
POLL_S = 0.1
PARENT_POLL_S = 0.5

Process = subprocess.Popen[Any]


def spawn(
    args: Sequence[str],
    *,
    log: Path | None = None,
    append: bool = True,
    own_group: bool = False,
    capture_stdout: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start ``args``; stdout and stderr go to ``log`` (or are inherited without one).

    ``own_group``: a session (and process group) of its own, so signals from the
    terminal reach the parent only. ``capture_stdout``: stdout is a pipe for the
    parent to read (a ``READY`` line, say) and only stderr goes to the log.
    ``pass_fds``: descriptors the child inherits (one end of a socket pair, say).
    """
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    opened = open(log, "ab" if append else "wb") if log is not None else contextlib.nullcontext()
    with opened as out:
        return subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else out,
            stderr=subprocess.STDOUT if out is not None and not capture_stdout else out,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=own_group,
            pass_fds=tuple(pass_fds),
        )


def stop_process(process: Process, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL; reaps. False if it had to be killed."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        kill_process(process)
        return False
    return True


async def stop_process_async(process: Process, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """``stop_process`` for a caller on an event loop: the waiting does not block it."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    if await wait_exit(process, timeout_s):
        return True
    kill_process(process)
    return False


def kill_process(process: Process) -> None:
    """SIGKILL and reap (an abrupt loss, or one that ignored SIGTERM); idempotent."""
    if process.poll() is None:
        process.kill()
    process.wait()


async def wait_exit(process: Process, timeout_s: float, poll_s: float = POLL_S) -> bool:
    """Wait up to ``timeout_s`` for the process to exit (and reap it); True if it did."""
    # Polling keeps the process a plain Popen (spawned without an await, so a
    # cancelled start never loses a pid) and notices an exit within ``poll_s``.
    for _ in range(max(1, round(timeout_s / poll_s))):
        if process.poll() is not None:
            return True
        await asyncio.sleep(poll_s)
    return process.poll() is not None


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; an exited but unreaped (zombie) process counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False  # gone between the two checks


async def watch_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> None:
    """Return once ``parent_pid`` is no longer this process's parent (it has died)."""
    while os.getppid() == parent_pid:  # noqa: ASYNC110 - no event tells of a parent's death
        await asyncio.sleep(poll_s)


def stop_on_signals(stop_requested: Callable[[], None]) -> None:
    """Make SIGINT (Ctrl-C) and SIGTERM call ``stop_requested`` in the running loop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested)
