"""`lattice up` end to end: the demo answers, Ctrl-C stops everything, nothing is orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lattice.natsd import free_port

REPO = Path(__file__).resolve().parent.parent


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of the killed process tree does not count as alive.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_lattice_up_serves_the_demo_and_stops_cleanly(
    tmp_path: Path, components: dict[str, Path]
) -> None:
    port = free_port()
    state = tmp_path / "state"
    lattice = Path(sys.executable).parent / "lattice"
    proc = subprocess.Popen(
        [
            str(lattice),
            "up",
            "--http-port", str(port),
            "--state-dir", str(state),
            "--components-dir", str(components["hello"].parent),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"lattice up exited early: {''.join(lines)}"
            lines.append(line)
            if line.startswith("demo:"):
                break
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/" in lines[-1]
        assert get(f"{base}/") == "Hello from wasmlattice!\n"
        first = get(f"{base}/counter")
        second = get(f"{base}/counter")
        assert '"count"' in first
        assert int(second.split(":")[1].strip(" }\n")) == int(first.split(":")[1].strip(" }\n")) + 1
        nats_pid = int((state / "nats" / "nats-server.pid").read_text())
        assert pid_alive(nats_pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        time.sleep(0.2)
        assert not pid_alive(nats_pid), "nats-server was orphaned"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
