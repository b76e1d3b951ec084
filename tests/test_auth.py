"""Connecting to a NATS server that requires credentials (user/password, token, .creds)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lattice.connection import NatsOptions, connect
from lattice.errors import ConnectError
from lattice.natsd import NatsServer
from lattice.state import LatticeState
from lattice.subjects import Subjects
from tests.nats_jwt import operator_setup


@pytest.fixture
def user_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats", extra_args=["--user", "ops", "--pass", "s3cret"]).start()
    yield server
    server.stop()


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats", extra_args=["--auth", "t0ken"]).start()
    yield server
    server.stop()


async def test_user_and_password(user_server: NatsServer) -> None:
    nc = await connect(NatsOptions(user_server.url, user="ops", password="s3cret"))
    await nc.close()
    with pytest.raises(ConnectError, match=r"refused the connection .*Authorization Violation"):
        await connect(NatsOptions(user_server.url, user="ops", password="wrong"), reconnect=False)
    # A host (reconnecting client) gets the same reason, not a hang.
    with pytest.raises(ConnectError, match="refused the connection"):
        await connect(NatsOptions(user_server.url, user="ops", password="wrong"))


async def test_token(token_server: NatsServer) -> None:
    nc = await connect(NatsOptions(token_server.url, token="t0ken"))
    await nc.close()


def test_cli_passes_credentials(user_server: NatsServer) -> None:
    lattice = str(Path(sys.executable).parent / "lattice")
    base = [lattice, "get", "hosts", "--nats-url", user_server.url, "-o", "json"]
    ok = subprocess.run(
        [*base, "--nats-user", "ops", "--nats-password", "s3cret"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "[]"
    refused = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "refused the connection" in refused.stderr and "--nats-user" in refused.stderr


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=wasmlattice-test-ca",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    )
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[NatsServer, Path]]:
    ca, cert, key = make_certificates(tmp_path)
    server = NatsServer(
        tmp_path / "nats", extra_args=["--tls", "--tlscert", str(cert), "--tlskey", str(key)]
    ).start()
    yield server, ca
    server.stop()


async def test_tls_with_a_private_ca(tls_server: tuple[NatsServer, Path]) -> None:
    server, ca = tls_server
    nc = await connect(NatsOptions(server.url, tls_ca_file=str(ca)))
    assert nc.is_connected
    await nc.close()
    # Without the CA the server's certificate is not trusted: refused, clearly.
    with pytest.raises(ConnectError, match="NATS"):
        await connect(NatsOptions(server.url), reconnect=False)


@pytest.fixture
def operator_server(tmp_path: Path) -> Iterator[tuple[NatsServer, Path]]:
    setup = operator_setup(tmp_path / "auth")
    server = NatsServer(tmp_path / "nats", extra_args=["-c", str(setup.server_config)]).start()
    yield server, setup.creds
    server.stop()


async def test_credentials_file(operator_server: tuple[NatsServer, Path]) -> None:
    """A .creds file (user JWT + seed) admits a host; JetStream works for its account."""
    server, creds = operator_server
    nc = await connect(NatsOptions(server.url, credentials_file=str(creds)))
    try:
        state = LatticeState(nc, Subjects(), "creds-test")
        await state.put_config("app", {"greeting": "hi"})
        assert await state.get_config("app") == {"greeting": "hi"}
    finally:
        await nc.close()
    with pytest.raises(ConnectError, match="refused the connection"):
        await connect(NatsOptions(server.url), reconnect=False)


def test_cli_takes_a_credentials_file(operator_server: tuple[NatsServer, Path]) -> None:
    server, creds = operator_server
    lattice = str(Path(sys.executable).parent / "lattice")
    command = [lattice, "get", "hosts", "--nats-url", server.url, "-o", "json"]
    result = subprocess.run(
        [*command, "--nats-creds", str(creds)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
