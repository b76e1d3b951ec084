"""Real processes for multi-host tests: host daemons started with the `lattice` CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lattice.client import LatticeClient
from lattice.natsd import free_port
from lattice.process import kill_process, spawn, stop_process

LATTICE = str(Path(sys.executable).parent / "lattice")


@dataclass
class HostProcess:
    """`lattice host` in a subprocess; stopped by pid when the test ends."""

    nats_url: str
    state_dir: Path
    host_id: str
    labels: dict[str, str] = field(default_factory=dict)
    heartbeat_s: float = 0.5
    http_port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    # The test session's shared compile cache, linked in so components compile once.
    compile_cache: Path | None = None
    # The working directory (its build/ and examples/ are artifact dirs); None: the test's.
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> HostProcess:
        self.http_port = self.http_port or free_port()
        args = [
            LATTICE,
            "host",
            "--nats-url",
            self.nats_url,
            "--state-dir",
            str(self.state_dir),
            "--host-id",
            self.host_id,
            "--http-port",
            str(self.http_port),
            "--heartbeat",
            str(self.heartbeat_s),
        ]
        for key, value in self.labels.items():
            args += ["--label", f"{key}={value}"]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.compile_cache is not None:
            (self.state_dir / "compile-cache").symlink_to(self.compile_cache)
        self.process = spawn(
            args,
            log=self.state_dir / "host.log",
            append=False,
            env={**os.environ, **self.env},
            cwd=self.cwd,
        )
        return self

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log_text(self) -> str:
        return (self.state_dir / "host.log").read_text(errors="replace")

    def kill(self) -> None:
        if self.process is not None:
            kill_process(self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=15)


@contextmanager
def host_processes(
    nats_url: str,
    tmp_path: Path,
    labels: Mapping[str, Mapping[str, str]],
    *,
    heartbeat_s: float,
    compile_cache: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[dict[str, HostProcess]]:
    """One `lattice host` per entry of ``labels`` (host id -> labels), all stopped at the end."""
    procs: dict[str, HostProcess] = {}
    try:
        for host_id, host_labels in labels.items():
            procs[host_id] = HostProcess(
                nats_url,
                tmp_path / host_id,
                host_id,
                dict(host_labels),
                heartbeat_s,
                env=dict(env or {}),
                compile_cache=compile_cache,
            ).start()
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


async def wait_for_hosts(
    client: LatticeClient, host_ids: set[str], timeout_s: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = {h.host_id for h in await client.hosts(wait_s=0.2)}
        if host_ids <= seen:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"hosts {sorted(host_ids - seen)} did not join (saw {sorted(seen)})")
