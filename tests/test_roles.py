"""Roles on NATS, on a real operator-mode nats-server set up by ``lattice.auth``.

Each test plays the attacker of the threat model (docs/security.md) with real
creds of one role, and checks that the server refuses what the role may not do,
while what it may do still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from cli.creds import ensure_lattice_buckets
from controller.service import Controller
from host.daemon import HostConfig, HostDaemon, resolve_host_id
from lattice.artifacts import ArtifactFailure, ArtifactStore
from lattice.auth import AuthStore, read_creds
from lattice.client import LatticeClient
from lattice.connection import Connection, NatsOptions, connect
from lattice.errors import AuthError, ConnectError, KeyValueFailure, RequestTimeout
from lattice.events import HostHeartbeat
from lattice.invoke import invoke, serve_component
from lattice.kv import open_bucket
from lattice.lease import Lease
from lattice.messages import HostInventory, Link, encode
from lattice.natsd import NatsServer
from lattice.specs import SpecStore
from lattice.state import LatticeState
from lattice.subjects import Subjects
from tests.hosts import running_daemon

SUBJECTS = Subjects()
OTHER = "other"


@dataclass
class Roles:
    """An operator-mode server with lattices ``default`` and ``other``."""

    url: str
    store: AuthStore

    def options(self, role: str, name: str | None = None, lattice: str = "default") -> NatsOptions:
        creds = self.store.issue(lattice, role, name)
        return NatsOptions(self.url, credentials_file=str(creds), name=f"test-{role}-{name}")

    async def connect(
        self, role: str, name: str | None = None, lattice: str = "default"
    ) -> Connection:
        return await connect(self.options(role, name, lattice), reconnect=False)


@pytest.fixture
def roles(tmp_path: Path) -> Iterator[Roles]:
    store = AuthStore.open(tmp_path / "state")
    for lattice in ("default", OTHER):
        store.account(lattice)
    server = NatsServer(tmp_path / "nats", extra_args=store.server_args()).start()
    try:
        yield Roles(server.url, store)
    finally:
        server.stop()


@pytest.fixture
async def buckets(roles: Roles) -> None:
    """The lattice's own buckets, made by an admin as `lattice up` does."""
    await ensure_lattice_buckets(roles.options("admin"), SUBJECTS)


@contextlib.asynccontextmanager
async def running_host(
    roles: Roles, name: str, tmp_path: Path, compile_cache: Path
) -> AsyncIterator[HostDaemon]:
    """A real host daemon whose id comes from its creds (no --host-id given)."""
    config = HostConfig(
        nats=roles.options("host", name), state_dir=tmp_path / name, http_port=0, heartbeat_s=0.2
    )
    async with running_daemon(config, compile_cache) as daemon:
        yield daemon


def refused(caplog: pytest.LogCaptureFixture, what: str, subject: str) -> bool:
    """Did the server report a permissions violation for ``what`` to ``subject``?"""
    wanted = f'permissions violation for {what} to "{subject}"'.lower()
    return any(wanted in record.getMessage().lower() for record in caplog.records)


# -- who gets in ----------------------------------------------------------------------


async def test_a_client_without_credentials_is_refused(roles: Roles) -> None:
    with pytest.raises(ConnectError, match="refused the connection"):
        await connect(NatsOptions(roles.url), reconnect=False)
    # Creds of another operator's account are refused too.
    stranger = AuthStore.open(Path(roles.store.root).parent / "stranger")
    creds = stranger.issue("default", "admin")
    with pytest.raises(ConnectError, match="refused the connection"):
        await connect(NatsOptions(roles.url, credentials_file=str(creds)), reconnect=False)


def test_creds_files_are_private_and_name_their_holder(roles: Roles) -> None:
    path = roles.store.issue("default", "host", "edge-1")
    assert path.stat().st_mode & 0o777 == 0o600
    assert (roles.store.root / "operator.nk").stat().st_mode & 0o777 == 0o600
    claims = read_creds(path)
    assert (claims.role, claims.host_id) == ("host", "edge-1")
    # Issued once, reused: a restart of `lattice up` keeps every copied file valid.
    assert roles.store.issue("default", "host", "edge-1").read_text() == path.read_text()
    again = AuthStore.open(Path(roles.store.root).parent)
    assert again.operator == roles.store.operator


async def test_a_host_takes_its_id_from_its_creds(
    roles: Roles, buckets: None, tmp_path: Path
) -> None:
    config = HostConfig(nats=roles.options("host", "edge-1"), state_dir=tmp_path, http_port=0)
    assert resolve_host_id(config) == "edge-1"
    daemon = await HostDaemon.start(config)
    try:
        assert daemon.host_id == "edge-1"
    finally:
        await daemon.shutdown()
    config.host_id = "someone-else"
    with pytest.raises(AuthError, match="differs"):
        resolve_host_id(config)
    with pytest.raises(AuthError, match="differs"):
        await HostDaemon.start(config)


# -- what a host may not do ----------------------------------------------------------------


async def test_a_host_cannot_command_or_impersonate_another_host(
    roles: Roles,
    buckets: None,
    tmp_path: Path,
    compile_cache: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "lattice.connection")
    async with running_host(roles, "victim", tmp_path, compile_cache):
        attacker = await roles.connect("host", "attacker")
        admin = await roles.connect("admin")
        try:
            rogue = LatticeClient(attacker, SUBJECTS, timeout_s=1.0)
            with pytest.raises(RequestTimeout):
                await rogue.stop_host("victim")
            assert refused(caplog, "publish", SUBJECTS.host_control("victim", "stop"))
            # Nor can it serve the victim's control subjects in its place.
            stolen: list[str] = []

            async def steal(msg: object) -> None:
                stolen.append(str(msg))

            await attacker.subscribe(SUBJECTS.host_control_all("victim"), cb=steal)
            await attacker.flush()
            inventory = await LatticeClient(admin, SUBJECTS).inventory("victim")
            assert inventory.host_id == "victim" and not stolen
            assert refused(caplog, "subscription", SUBJECTS.host_control_all("victim"))
            # The victim still runs: the stop never reached it.
            assert [h.host_id for h in await LatticeClient(admin, SUBJECTS).hosts()] == ["victim"]
        finally:
            await attacker.close()
            await admin.close()


async def test_a_host_cannot_write_desired_state(roles: Roles, buckets: None) -> None:
    host = await roles.connect("host", "edge-1")
    admin = await roles.connect("admin")
    try:
        state = LatticeState(host, SUBJECTS, "edge-1")
        everything = Link(source_id="*", target="keyvalue", config={"bucket": "loot"})
        attempts = [
            state.put_link(everything),
            state.put_config("app", {"secret": "forged"}),
            SpecStore(host, SUBJECTS, "edge-1").put("app", "1", "forged"),
            Lease(host, SUBJECTS, "forger", ttl_s=3600).try_acquire(),
        ]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        assert all(isinstance(r, KeyValueFailure) for r in results), results
        # Nothing landed, as the admin sees it.
        admin_state = LatticeState(admin, SUBJECTS, "client")
        assert await admin_state.links() == []
        assert await admin_state.get_config("app") is None
        assert await SpecStore(admin, SUBJECTS).apps() == []
        assert await Lease(admin, SUBJECTS, "admin").holder_now() is None
        # What it may do: read links and config, and use the components' data buckets.
        await admin_state.put_link(everything)
        await admin_state.put_config("app", {"greeting": "hi"})
        assert [link.source_id for link in await state.links()] == ["*"]
        assert await state.get_config("app") == {"greeting": "hi"}
        loot = await open_bucket(host, "loot", create=False)
        assert await loot.increment("n", 2) == 2
    finally:
        await host.close()
        await admin.close()


async def test_a_host_cannot_publish_a_heartbeat_as_another_host(
    roles: Roles, buckets: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "lattice.connection")
    controller_nc = await roles.connect("controller")
    host = await roles.connect("host", "edge-1")
    controller = Controller(controller_nc, SUBJECTS, host_timeout_s=30)
    await controller.start()
    try:

        def heartbeat(host_id: str, zone: str) -> bytes:
            inventory = HostInventory(
                host_id=host_id,
                friendly_name=host_id,
                labels={"zone": zone},
                version="x",
                uptime_s=1.0,
            )
            return encode(HostHeartbeat(source=host_id, data=inventory))

        own = SUBJECTS.event("host_heartbeat", "edge-1")

        async def seen_in(zone: str) -> bool:
            """Publish the host's own heartbeat until the controller has it."""
            for _ in range(100):
                await host.publish(own, heartbeat("edge-1", zone))
                await host.flush()
                await asyncio.sleep(0.05)
                view = controller.hosts.get("edge-1")
                if view is not None and view.labels.get("zone") == zone:
                    return True
            return False

        # First the controller must be listening, or what follows proves nothing.
        assert await seen_in("us")
        # Under another host's id: the server drops it.
        await host.publish(SUBJECTS.event("host_heartbeat", "eu-host"), heartbeat("eu-host", "eu"))
        # Under its own subject but claiming another id: the controller drops it.
        await host.publish(own, heartbeat("eu-host", "eu"))
        # Its own heartbeat counts; arriving after the two (one connection keeps order).
        assert await seen_in("us-2")
        assert list(controller.hosts) == ["edge-1"]
        assert refused(caplog, "publish", SUBJECTS.event("host_heartbeat", "eu-host"))
    finally:
        controller.request_stop()
        await controller.run()
        await host.close()
        await controller_nc.close()


# -- invocations ------------------------------------------------------------------------------


async def test_an_admin_cannot_join_an_invocation_queue_group(
    roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "lattice.connection")
    host = await roles.connect("host", "edge-1")
    admin = await roles.connect("admin")

    async def real(function: str, body: bytes, _headers: Mapping[str, str]) -> bytes:
        return b"real:" + body

    responder = await serve_component(host, SUBJECTS, "pay", "acme:pay/api", real, concurrency=4)
    await host.flush()  # the server has the host's subscription before the first call
    forged_calls: list[bytes] = []

    async def forge(msg: object) -> None:
        forged_calls.append(b"x")

    try:
        subject = SUBJECTS.rpc("pay", "acme:pay/api")
        # The attack: join the component's queue group (and, for good measure, all rpc).
        await admin.subscribe(subject, queue="pay", cb=forge)
        await admin.subscribe(f"{SUBJECTS.root}.rpc.>", cb=forge)
        await admin.flush()
        answers = [
            await invoke(admin, SUBJECTS, "pay", "acme:pay/api", "charge", str(n).encode())
            for n in range(20)
        ]
        assert answers == [f"real:{n}".encode() for n in range(20)]
        assert forged_calls == []
        assert refused(caplog, "subscription", subject)
        assert refused(caplog, "subscription", f"{SUBJECTS.root}.rpc.>")
    finally:
        await responder.close()
        await host.close()
        await admin.close()


# -- lattices apart ------------------------------------------------------------------------


async def test_a_host_of_one_lattice_sees_nothing_of_another(roles: Roles, buckets: None) -> None:
    other_subjects = Subjects(lattice=OTHER)
    await ensure_lattice_buckets(roles.options("admin", lattice=OTHER), other_subjects)
    other_admin = await roles.connect("admin", lattice=OTHER)
    other_host = await roles.connect("host", "b-1", lattice=OTHER)
    host = await roles.connect("host", "a-1")
    served: list[str] = []
    try:
        # Lattice B: config, a data bucket, and a host answering pings.
        await LatticeState(other_admin, other_subjects, "client").put_config("db", {"pw": "x"})
        await LatticeState(other_admin, other_subjects, "client").put_link(
            Link(source_id="c", target="keyvalue", config={"bucket": "shared-name"})
        )
        other_data = await open_bucket(other_host, "shared-name", create=False)
        await other_data.put("secret", b"b-only")

        async def pong(msg: object) -> None:
            served.append("ping")

        await other_host.subscribe(other_subjects.ping, cb=pong)
        await other_host.flush()
        # Lattice A's host finds none of it: its account has its own subjects and streams.
        with pytest.raises(KeyValueFailure, match="does not exist"):
            await open_bucket(host, other_subjects.config_bucket, create=False)
        with pytest.raises(KeyValueFailure, match="does not exist"):
            await open_bucket(host, "shared-name", create=False)
        assert await LatticeClient(host, SUBJECTS).hosts(wait_s=0.3) == []
        admin = await roles.connect("admin")
        try:
            # Even a lattice A admin, whose permissions cover all of A, reaches nothing of B.
            assert await LatticeClient(admin, other_subjects).hosts(wait_s=0.3) == []
        finally:
            await admin.close()
        assert served == []
    finally:
        for nc in (host, other_host, other_admin):
            await nc.close()


# -- the happy path ----------------------------------------------------------------------------


def hello_app(source: Path) -> str:
    return f"""\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: hello
  annotations:
    version: v1
spec:
  components:
    - name: hello
      type: component
      properties:
        image: {source}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
    - name: httpserver
      type: capability
      properties:
        image: ghcr.io/wasmcloud/http-server:0.27.0
      traits:
        - type: link
          properties:
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            target:
              name: hello
            source:
              config:
                - name: route
                  properties:
                    path: /hi
"""


async def test_host_controller_and_cli_with_their_creds_deploy_and_serve_an_app(
    roles: Roles,
    buckets: None,
    tmp_path: Path,
    compile_cache: Path,
    components: dict[str, Path],
) -> None:
    async with running_host(roles, "edge-1", tmp_path, compile_cache) as daemon:
        controller_nc = await roles.connect("controller")
        controller = Controller(controller_nc, SUBJECTS, host_timeout_s=5)
        await controller.start()
        runner = asyncio.create_task(controller.run(), name="controller")
        admin = await roles.connect("admin")
        try:
            specs = SpecStore(admin, SUBJECTS)
            await specs.put("hello", "v1", hello_app(components["hello-wat"]))
            await specs.deploy("hello", "v1")
            assert daemon.http is not None
            body = await _get_when_served(f"{daemon.http.url}/hi", timeout_s=60)
            assert body == "Hello from wasmlattice!\n"
            assert controller.is_leader
        finally:
            controller.request_stop()
            await runner
            await controller_nc.close()
            await admin.close()


async def _get_when_served(url: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(url) as response:
                if response.status == 200:
                    return await response.text()
            assert time.monotonic() < deadline, f"{url} not served within {timeout_s} s"
            await asyncio.sleep(0.2)


async def test_an_admin_uploads_a_component_that_a_host_can_read_not_write(
    roles: Roles, buckets: None
) -> None:
    """`lattice apply` uploads components into the object store; hosts fetch them from it."""
    admin = await roles.connect("admin")
    host = await roles.connect("host", "edge-1")
    try:
        data = os.urandom(300_000)  # several chunks
        digest = await ArtifactStore(admin, SUBJECTS).put(data)
        assert await ArtifactStore(host, SUBJECTS).get(digest, max_bytes=2**20) == data
        with pytest.raises(ArtifactFailure):
            await ArtifactStore(host, SUBJECTS).put(b"a host may not add components")
    finally:
        await host.close()
        await admin.close()
