"""A real ``redis-server`` per test, on a free port, with no persistence; stopped by pid.

redis-server comes from the system packages (``make test`` and ``.ci/run``
install it when it is missing). Import the ``redis_server`` fixture from here.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lattice.messages import StartProvider
from lattice.natsd import free_port, port_is_open
from lattice.process import spawn, stop_process


@dataclass
class RedisServer:
    work_dir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found: apt-get install redis-server (make test does)")
        self.port = self.port or free_port()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.work_dir)]
        self.process = spawn(args, log=self.work_dir / "redis.log")
        deadline = time.monotonic() + timeout_s
        while not port_is_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_text = (self.work_dir / "redis.log").read_text(errors="replace")
                pytest.fail(f"redis-server did not start on port {self.port}:\n{log_text}")
            time.sleep(0.02)
        return self

    def provider(self, provider_id: str) -> StartProvider:
        """A request to start a keyvalue-redis provider backed by this server."""
        return StartProvider(
            provider_id=provider_id, kind="keyvalue-redis", config={"redis_url": self.url}
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()
