"""Secrets stay out of text, and text from the lattice cannot forge output.

- URLs: the userinfo password and secret query values are gone from the
  inventory, the events, the error replies and the host's log, while the real
  URL (a component fetched over HTTP with basic auth) is what is used.
- Child processes: a provider started with a Redis password and a NATS password
  (as user/password and inside the URL) has neither on its command line
  (``/proc/<pid>/cmdline``), yet uses both; its config shows masked.
- Isolated import path: a ``redis`` module or ``providers`` package planted in the
  host's working directory and PYTHONPATH is never imported by a provider.
- CLI: names, labels, errors and events holding ANSI escapes and newlines print
  escaped, one line each.
- Component logs: a guest's ``"\\n2026-01-01 ERROR host: fake"`` stays one record,
  with the component's prefix.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp.web
import pytest
import redis

from host.daemon import HostConfig, HostDaemon
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.errors import ConnectError, RemoteError
from lattice.events import ComponentScaled, ComponentScaleFailed, LatticeEvent
from lattice.messages import Reply, ScaleComponent, StartProvider
from lattice.natsd import NatsServer, free_port
from lattice.options import command_line
from lattice.redact import (
    MASK,
    SafeFormatter,
    printable,
    redacted,
    redacted_config,
    redacted_text,
)
from providers.logging_provider import OutputLines, log_from_component
from tests.redis_fixture import RedisServer, redis_server

__all__ = ["redis_server"]  # a fixture: imported to be found by pytest

REPO = Path(__file__).resolve().parent.parent
LATTICE = str(Path(sys.executable).parent / "lattice")
SECRET = "s3cret-pw"
TOKEN = "t0ken-value"
EVIL = "\x1b[31mred\n2026-01-01 ERROR host: fake"


# -- the functions --------------------------------------------------------------------


def test_urls_in_free_text_are_redacted() -> None:
    text = f"no server at nats://u:{SECRET}@h:4222 (and https://{TOKEN}@e/x?api_key=k&n=1)"
    assert redacted_text(text) == (
        "no server at nats://u:***@h:4222 (and https://***@e/x?api_key=***&n=1)"
    )
    assert redacted_text("nothing to hide here: a/b c:d") == "nothing to hide here: a/b c:d"
    assert redacted_text("bad http://[::1 url") == "bad <unparseable URL> url"
    # Already redacted text stays as it is.
    assert redacted_text(redacted_text(text)) == redacted_text(text)


def test_config_shown_masks_secret_keys_and_urls() -> None:
    config = {
        "redis_url": f"redis://:{SECRET}@db:6379/0",
        "key_prefix": "kv",
        "api_key": "k",
        "db_password": "p",
        "authToken": "t",
        "bucket": "counts",
    }
    assert redacted_config(config) == {
        "redis_url": f"redis://:{MASK}@db:6379/0",
        "key_prefix": "kv",
        "api_key": MASK,
        "db_password": MASK,
        "authToken": MASK,
        "bucket": "counts",
    }


def test_printable_escapes_controls_and_keeps_the_rest() -> None:
    assert printable(EVIL) == "\\x1b[31mred\\n2026-01-01 ERROR host: fake"
    assert printable("tab\there\r\u202eevil\u2028x\x85") == (
        "tab\\there\\r\\u202eevil\\u2028x\\x85"
    )
    assert printable("plain é ✓ 漢字") == "plain é ✓ 漢字"


def test_the_safe_formatter_redacts_and_keeps_one_line_per_message() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "at %s: %s", (f"redis://:{SECRET}@h/0", EVIL), None
    )
    line = SafeFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO at redis://:***@h/0: \\x1b[31mred\\n2026-01-01 ERROR host: fake"


def test_an_error_reply_is_redacted_and_one_line() -> None:
    reply = Reply.failure("failed", f"cannot fetch http://u:{SECRET}@h/x\nsecond line")
    assert reply.error == "cannot fetch http://u:***@h/x\\nsecond line"


def test_a_nats_url_with_a_password_goes_to_a_child_in_its_environment() -> None:
    url = f"nats://lattice:{SECRET}@127.0.0.1:4222"
    args, env = command_line(NatsOptions(url), "default")
    assert not any(SECRET in arg for arg in args)
    assert env == {"WASMLATTICE_NATS_URL": url}


async def test_a_connect_error_names_the_url_without_its_password() -> None:
    url = f"nats://lattice:{SECRET}@127.0.0.1:{free_port()}"
    with pytest.raises(ConnectError) as caught:
        await connect(NatsOptions(url), reconnect=False)
    assert SECRET not in str(caught.value) and "nats://lattice:***@127.0.0.1" in str(caught.value)


# -- component logs -------------------------------------------------------------------


def test_a_component_cannot_forge_a_host_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wasmlattice.component")
    log_from_component("evil", "error", "ctx\nERROR host", EVIL)  # wasi:logging
    stdout = OutputLines("evil", "stdout")  # guest stdout, line by line
    stdout.write(f"first\r{EVIL}\n".encode())
    stdout.write(b"\x1b]0;title\x07\n")
    records = [r for r in caplog.records if r.name == "wasmlattice.component"]
    assert [r.getMessage() for r in records] == [
        "[evil] ctx\\nERROR host: \\x1b[31mred\\n2026-01-01 ERROR host: fake",
        "[evil] stdout: first\\r\\x1b[31mred",
        "[evil] stdout: 2026-01-01 ERROR host: fake",
        "[evil] stdout: \\x1b]0;title\\x07",
    ]
    # As the host's log shows them: one line each, the component's prefix on each.
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for record in records:
        line = formatter.format(record)
        assert len(line.splitlines()) == 1 and "\x1b" not in line
        assert " wasmlattice.component: [evil] " in line


# -- a real host: sources over HTTP with credentials -------------------------------------


@pytest.fixture
async def host(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[HostDaemon]:
    daemon = await HostDaemon.start(
        HostConfig(
            nats=NatsOptions(nats_server.url),
            state_dir=tmp_path / "host",
            host_id="host-r",
            http_port=0,
            heartbeat_s=0.2,
            artifact_dirs=[tmp_path / "artifacts"],
            fetch_timeout_s=5.0,
        )
    )
    try:
        yield daemon
    finally:
        await daemon.shutdown()


@pytest.fixture
async def artifact_server(components: dict[str, Path]) -> AsyncIterator[str]:
    """Serves hello-wat.wasm to basic auth user ``deploy`` with password SECRET."""
    wasm = components["hello-wat"].read_bytes()
    expected = "Basic " + base64.b64encode(f"deploy:{SECRET}".encode()).decode()

    async def handle(request: aiohttp.web.Request) -> aiohttp.web.Response:
        if request.headers.get("Authorization") != expected:
            return aiohttp.web.Response(status=401)
        if request.path != "/hello.wasm" or request.query.get("token") != TOKEN:
            return aiohttp.web.Response(status=404)
        return aiohttp.web.Response(body=wasm)

    app = aiohttp.web.Application()
    app.router.add_get("/{name}", handle)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_sources_with_credentials_are_redacted_in_inventory_events_replies_and_logs(
    host: HostDaemon,
    nats_server: NatsServer,
    artifact_server: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    source = f"http://deploy:{SECRET}@{artifact_server}/hello.wasm?token={TOKEN}"
    nc = await connect(NatsOptions(nats_server.url))
    client = LatticeClient(nc)
    seen: list[LatticeEvent] = []

    async def tail() -> None:
        async for event in client.events():
            seen.append(event)

    tailer = asyncio.create_task(tail(), name="tail-events")
    try:
        await asyncio.sleep(0.2)  # subscribed
        # The credentials are used: the server answers only with them.
        await client.scale("host-r", ScaleComponent(component_id="hello", source=source))
        (described,) = (await client.inventory("host-r")).components
        shown = f"http://deploy:***@{artifact_server}/hello.wasm?token=***"
        assert described.source == shown

        missing = source.replace("hello.wasm", "missing.wasm")
        with pytest.raises(RemoteError) as caught:
            await client.scale("host-r", ScaleComponent(component_id="gone", source=missing))
        assert "HTTP 404" in str(caught.value) and "deploy:***@" in str(caught.value)

        async def both_events() -> bool:
            kinds = {type(e) for e in seen}
            return ComponentScaled in kinds and ComponentScaleFailed in kinds

        await wait_until(both_events, "component_scaled and component_scale_failed")
        scaled = next(e for e in seen if isinstance(e, ComponentScaled))
        assert scaled.data.source == shown
        failed = next(e for e in seen if isinstance(e, ComponentScaleFailed))
        assert "deploy:***@" in failed.data.error
        for event in seen:  # heartbeats too
            assert SECRET not in event.model_dump_json() and TOKEN not in event.model_dump_json()
        assert SECRET not in str(caught.value) and TOKEN not in str(caught.value)
        # The host's log (the test's artifact server logs its own requests: not the host).
        host_log = [r.getMessage() for r in caplog.records if r.name != "aiohttp.access"]
        assert not [m for m in host_log if SECRET in m or TOKEN in m]
        assert any("deploy:***@" in m for m in host_log)
    finally:
        tailer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tailer
        await nc.close()


async def wait_until(check: object, what: str, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


# -- the CLI ----------------------------------------------------------------------------


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        LATTICE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_prints_labels_errors_and_events_escaped(
    host: HostDaemon, nats_server: NatsServer
) -> None:
    url = nats_server.url
    nc = await connect(NatsOptions(url))
    try:
        await LatticeClient(nc).put_label("host-r", "zone", EVIL)
    finally:
        await nc.close()
    code, out, _ = await run_cli("get", "hosts", "--nats-url", url)
    assert code == 0
    assert "\x1b" not in out and "zone=\\x1b[31mred\\n2026-01-01 ERROR host: fake" in out
    assert not any(line.startswith("2026-01-01") for line in out.splitlines())

    # An error (the host's reply quotes the source) and the event it causes.
    events = await asyncio.create_subprocess_exec(
        LATTICE, "events", "--nats-url", url, stdout=asyncio.subprocess.PIPE
    )
    try:
        await asyncio.sleep(1.5)  # the tail is subscribed
        code, out, err = await run_cli(
            "scale", "component", "evil", f"/nowhere/{EVIL}.wasm", "--nats-url", url
        )
        assert code == 1 and "\x1b" not in err
        (error_line,) = [line for line in err.splitlines() if line.startswith("Error:")]
        assert "/nowhere/\\x1b[31mred\\n2026-01-01 ERROR host: fake.wasm" in error_line
        assert events.stdout is not None
        line = (await asyncio.wait_for(events.stdout.readline(), 10)).decode()
    finally:
        events.terminate()
        await events.wait()
    assert "component_scale_failed" in line and "\x1b" not in line
    assert "\\x1b[31mred\\n2026-01-01 ERROR host: fake" in line


# -- provider processes -----------------------------------------------------------------


@pytest.fixture
def redis_with_password(redis_server: RedisServer) -> Iterator[str]:
    """The Redis URL, with its password, of a server that requires one."""
    direct = redis.Redis.from_url(redis_server.url)
    direct.config_set("requirepass", SECRET)
    direct.close()
    yield f"redis://:{SECRET}@127.0.0.1:{redis_server.port}/0"


NATS_SECRET = "n4ts-secret"


@pytest.fixture
def nats_with_password(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats-pw", extra_args=["--user", "lat", "--pass", NATS_SECRET])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("style", ["user-password", "url"])
async def test_a_provider_gets_its_secrets_but_not_on_its_command_line(
    nats_with_password: NatsServer, redis_with_password: str, tmp_path: Path, style: str
) -> None:
    port = nats_with_password.port
    nats = (
        NatsOptions(f"nats://127.0.0.1:{port}", user="lat", password=NATS_SECRET)
        if style == "user-password"
        else NatsOptions(f"nats://lat:{NATS_SECRET}@127.0.0.1:{port}")
    )
    daemon = await HostDaemon.start(
        HostConfig(nats=nats, state_dir=tmp_path / "host", host_id="host-p", http_port=0)
    )
    try:
        request = StartProvider(
            provider_id="kv", kind="keyvalue-redis", config={"redis_url": redis_with_password}
        )
        started = await daemon.start_provider(request)
        assert started.healthy and started.pid is not None  # it used both passwords
        cmdline = command_line_of(started.pid)
        assert b"providers.run" in b" ".join(cmdline)
        for arg in cmdline:
            assert SECRET.encode() not in arg and NATS_SECRET.encode() not in arg, cmdline
        (shown,) = daemon.inventory().providers
        assert shown.config == {"redis_url": redacted(redis_with_password)}
        assert f":{MASK}@" in shown.config["redis_url"]
        log_text = (tmp_path / "host" / "providers" / "kv.log").read_text()
        assert SECRET not in log_text and NATS_SECRET not in log_text
    finally:
        await daemon.shutdown()


def command_line_of(pid: int) -> list[bytes]:
    """What every user of the machine can read about process ``pid``."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


PLANTED = """
import pathlib
pathlib.Path({marker!r}).open("a").write({name!r} + "\\n")
raise ImportError("planted {name} imported")
"""


async def test_a_provider_ignores_modules_planted_in_cwd_and_pythonpath(
    nats_server: NatsServer,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    planted = tmp_path / "planted"
    marker = tmp_path / "imported.txt"
    (planted / "providers").mkdir(parents=True)
    (planted / "redis.py").write_text(PLANTED.format(marker=str(marker), name="redis"))
    (planted / "providers" / "__init__.py").write_text(
        PLANTED.format(marker=str(marker), name="providers")
    )
    (planted / "providers" / "run.py").write_text("")
    # The host runs from the planted directory, with it first on PYTHONPATH; the
    # provider inherits both (this process imported the real modules already).
    monkeypatch.chdir(planted)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(planted), str(REPO)]))
    daemon = await HostDaemon.start(
        HostConfig(
            nats=NatsOptions(nats_server.url),
            state_dir=tmp_path / "host",
            host_id="host-i",
            http_port=0,
        )
    )
    try:
        started = await daemon.start_provider(redis_server.provider("kv"))
        assert started.healthy
        assert not marker.exists(), marker.read_text()
    finally:
        await daemon.shutdown()
