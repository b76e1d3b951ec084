"""Every failure a user can cause from the CLI: one line on stderr, exit != 0, no traceback.

Each case runs the real `lattice` console script (with this environment's
PYTHONPATH, so it runs this checkout's code), against a real nats-server and a
real `lattice host` where the failure needs one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.natsd import NatsServer, free_port
from tests.lattice_procs import HostProcess, wait_for_hosts

LATTICE = Path(sys.executable).parent / "lattice"


REPO = Path(__file__).resolve().parent.parent


def lattice(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LATTICE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "WASMLATTICE_NATS_URL": ""},
    )


def the_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error line; fails unless the command failed with one line, its last on stderr.

    Progress lines ("scaling x to 1 ...") may come before it.
    """
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert errors == lines[-1:], result.stderr
    return errors[0]


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port some other program holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_http_port_in_use(nats_server: NatsServer, listening_port: int, tmp_path: Path) -> None:
    result = lattice(
        "host",
        "--nats-url",
        nats_server.url,
        "--http-port",
        str(listening_port),
        "--state-dir",
        str(tmp_path / "host"),
    )
    line = the_error(result)
    assert str(listening_port) in line and "in use" in line, line


def test_nats_unreachable() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    line = the_error(lattice("get", "hosts", "--nats-url", url))
    assert f"no NATS server at {url}" in line


def test_host_with_nats_unreachable(tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    line = the_error(lattice("host", "--nats-url", url, "--state-dir", str(tmp_path)))
    assert f"no NATS server at {url}" in line


def test_manifest_file_missing(tmp_path: Path) -> None:
    line = the_error(lattice("apply", "-f", "nope.yaml", cwd=tmp_path))
    assert "nope.yaml" in line and "No such file" in line


async def test_component_file_missing(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> None:
    host = HostProcess(
        nats_server.url, tmp_path / "host", "errors-host", compile_cache=compile_cache
    ).start()
    try:
        nc = await connect(NatsOptions(nats_server.url), reconnect=False)
        try:
            await wait_for_hosts(LatticeClient(nc), {"errors-host"})
        finally:
            await nc.close()
        # Inside the host's artifact directories (./build): missing, not refused.
        missing = str(REPO / "build" / "components" / "nope.wasm")
        result = lattice("scale", "component", "x", missing, "--nats-url", nats_server.url)
    finally:
        host.stop()
    line = the_error(result)
    assert missing in line and "not found" in line, line


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("start", "component", "x", "/x.wasm", "--config", "novalue"), "--config"),
        (("link", "put", "a", "b", "--config", "novalue"), "--config"),
        (("config", "put", "name", "novalue"), "novalue"),
        (("host", "--label", "x"), "--label"),
        (("label", "put", "some-host", "x"), "'x'"),
        (("scale", "component", "x", "/x.wasm", "--count", "many"), "--count"),
        (("scale", "component", "x", "/x.wasm", "--count", "-1"), "count=-1"),
        (("host", "--http-port", "99999"), "--http-port"),
        (("controller", "--host-timeout", "0"), "--host-timeout"),
        (("get", "nothing"), "nothing"),
    ],
)
def test_bad_values(args: tuple[str, ...], named: str) -> None:
    """Refused before anything connects: no server is needed."""
    line = the_error(lattice(*args, "--nats-url", f"nats://127.0.0.1:{free_port()}"))
    assert named in line, line


def test_help_is_no_error() -> None:
    result = lattice("get")
    assert result.returncode in (0, 2)  # click 8.2+ answers a bare group with its help
    assert "hosts" in result.stdout + result.stderr and "Traceback" not in result.stderr
