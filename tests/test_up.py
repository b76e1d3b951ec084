"""`lattice up` end to end: the demo answers, Ctrl-C stops everything, nothing is orphaned."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lattice.natsd import free_port
from lattice.process import process_alive

REPO = Path(__file__).resolve().parent.parent


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


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
            "--http-port",
            str(port),
            "--state-dir",
            str(state),
            "--components-dir",
            str(components["hello"].parent),
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
        assert process_alive(nats_pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        time.sleep(0.2)
        assert not process_alive(nats_pid), "nats-server was orphaned"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def cli(*args: str, creds: Path | None = None) -> subprocess.CompletedProcess[str]:
    lattice = Path(sys.executable).parent / "lattice"
    auth = ["--nats-creds", str(creds)] if creds else []
    return subprocess.run([str(lattice), *args, *auth], capture_output=True, text=True, timeout=60)


def test_new_user_workflow_two_hosts(tmp_path: Path, components: dict[str, Path]) -> None:
    """`lattice up`, a second `lattice host --label zone=b`, then manage it all from the CLI.

    The second host and the CLI use creds `lattice creds` issues from up's state dir.
    """
    nats_port, http_a, http_b = free_port(), free_port(), free_port()
    url = f"nats://127.0.0.1:{nats_port}"
    lattice = str(Path(sys.executable).parent / "lattice")
    up = subprocess.Popen(
        [
            lattice,
            "up",
            "--no-demo",
            "--nats-port",
            str(nats_port),
            "--http-port",
            str(http_a),
            "--state-dir",
            str(tmp_path / "a"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    second = None
    try:
        assert up.stdout is not None
        while "press Ctrl-C" not in (line := up.stdout.readline()):
            assert line, "lattice up exited early"
        issued = cli("creds", "host", "edge-b", "--state-dir", str(tmp_path / "a"))
        assert issued.returncode == 0, issued.stderr
        host_creds = issued.stdout.strip()
        admin = Path(cli("creds", "admin", "--state-dir", str(tmp_path / "a")).stdout.strip())
        second = subprocess.Popen(
            [
                lattice,
                "host",
                "--nats-url",
                url,
                "--label",
                "zone=b",
                "--nats-creds",
                host_creds,
                "--http-port",
                str(http_b),
                "--state-dir",
                str(tmp_path / "b"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        hosts: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(hosts) < 2:
            result = cli("get", "hosts", "--nats-url", url, "-o", "json", creds=admin)
            assert result.returncode == 0, result.stderr
            hosts = json.loads(result.stdout)
        assert len(hosts) == 2
        assert {"zone": "b"}.items() <= next(
            h["labels"] for h in hosts if h["host_id"] == "edge-b"
        ).items()  # type: ignore[union-attr]
        table = cli("get", "hosts", "--nats-url", url, creds=admin)
        assert "edge-b" in table.stdout and "zone=b" in table.stdout
        routed = cli(
            "link",
            "put",
            "http-server",
            "hello",
            "--namespace",
            "wasmlattice",
            "--package",
            "http",
            "--name",
            "hello",
            "--config",
            "path=/hi",
            "--nats-url",
            url,
            creds=admin,
        )
        assert routed.returncode == 0, routed.stderr
        scaled = cli(
            "scale",
            "component",
            "hello",
            str(components["hello-wat"]),
            "--count",
            "2",
            "--host",
            "edge-b",
            "--nats-url",
            url,
            creds=admin,
        )
        assert scaled.returncode == 0, scaled.stderr
        assert get(f"http://127.0.0.1:{http_b}/hi") == "Hello from wasmlattice!\n"
        inventory = json.loads(
            cli("get", "inventory", "edge-b", "--nats-url", url, "-o", "json", creds=admin).stdout
        )
        assert [(c["component_id"], c["count"]) for c in inventory[0]["components"]] == [
            ("hello", 2)
        ]
        # Errors are one clear line.
        missing = cli("get", "inventory", "ghost", "--nats-url", url, creds=admin)
        assert missing.returncode == 1 and "no host 'ghost'" in missing.stderr
        down = cli("down", "--state-dir", str(tmp_path / "a"))
        assert down.returncode == 0, down.stderr
        assert up.wait(30) == 0
    finally:
        for proc in (second, up):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_cli_without_a_server_says_how_to_get_one() -> None:
    result = cli("get", "hosts", "--nats-url", f"nats://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "no NATS server at" in result.stderr and "lattice up" in result.stderr
