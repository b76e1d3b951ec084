"""A real OCI registry per test: Debian's ``docker-registry`` (the CNCF distribution
registry) on a free port, storage in the test's tmp dir, optionally behind basic auth
(an htpasswd file made with ``htpasswd -B``); stopped by pid.

Both binaries come from the system packages (``make test`` and ``.ci/run`` install
``docker-registry`` and ``apache2-utils`` when they are missing).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lattice.natsd import free_port, port_is_open

REGISTRY_BINARY = "/usr/bin/docker-registry"


@dataclass
class Registry:
    work_dir: Path
    user: str | None = None
    password: str | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> Registry:
        binary = shutil.which("docker-registry") or REGISTRY_BINARY
        if not Path(binary).exists():
            pytest.fail("docker-registry not found: apt-get install docker-registry")
        self.port = self.port or free_port()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = [
            "version: 0.1",
            "log: {level: warn}",
            f"storage: {{filesystem: {{rootdirectory: {self.work_dir / 'data'}}}}}",
            f"http: {{addr: '127.0.0.1:{self.port}', secret: test-secret}}",
        ]
        if self.user is not None:
            htpasswd = shutil.which("htpasswd")
            if htpasswd is None:
                pytest.fail("htpasswd not found: apt-get install apache2-utils")
            line = subprocess.run(
                [htpasswd, "-Bbn", self.user, self.password or ""],
                check=True,
                capture_output=True,
            ).stdout
            (self.work_dir / "htpasswd").write_bytes(line)
            path = self.work_dir / "htpasswd"
            config.append(f"auth: {{htpasswd: {{realm: test, path: {path}}}}}")
        (self.work_dir / "config.yml").write_text("\n".join(config) + "\n")
        with open(self.work_dir / "registry.log", "ab") as log:
            self.process = subprocess.Popen(
                [binary, "serve", str(self.work_dir / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while not port_is_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.work_dir / "registry.log").read_text(errors="replace")
                pytest.fail(f"docker-registry did not start on port {self.port}:\n{text}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
