"""What a host may start: the pure decisions, then a real host with a policy file or service.

The integration tests run an in-process host against a real nats-server and
real components; the policy service is a real responder on the lattice.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from host.daemon import HostConfig, HostDaemon
from host.errors import PolicyFileError
from host.policy import (
    LocalPolicy,
    component_request,
    decide_component,
    decide_provider,
    load_policy,
    normalized_source,
    provider_request,
)
from lattice.client import LatticeClient
from lattice.connection import Connection, NatsOptions, connect
from lattice.errors import RemoteError
from lattice.events import PolicyDenied, decode_event
from lattice.messages import ScaleComponent, StartProvider
from lattice.natsd import NatsServer
from lattice.policy_messages import PolicyDecision, PolicyRequest, serve_policy
from lattice.subjects import Subjects
from tests.lattice_procs import LATTICE
from tests.redis_fixture import RedisServer, redis_server

__all__ = ["redis_server"]  # a fixture: imported to be found by pytest

PIN = "ab" * 32
SUBJECTS = Subjects()


def policy(**rules: Any) -> LocalPolicy:
    return LocalPolicy.model_validate(rules)


def scale(source: str, sha256: str | None = None) -> ScaleComponent:
    return ScaleComponent(component_id="c", source=source, sha256=sha256)


def redis(url: str, kind: str = "keyvalue-redis") -> StartProvider:
    return StartProvider.model_validate(
        {"provider_id": "p", "kind": kind, "config": {"redis_url": url}}
    )


# -- decisions (pure) ----------------------------------------------------------------------


def test_no_rules_allow_everything() -> None:
    assert decide_component(LocalPolicy(), scale("/anywhere/x.wasm")).allowed
    assert decide_provider(LocalPolicy(), redis("redis://anywhere:1")).allowed


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("/opt/wasm/app.wasm", True),
        ("/opt/wasm/sub/app.wasm", True),
        ("/opt/wasm/../etc/app.wasm", False),  # resolved before matching
        ("/opt/wasmevil/app.wasm", False),  # the prefix ends with "/"
        ("file:///opt/wasm/app.wasm", False),  # a prefix matches the text as given
        ("https://wasm.example.com/app.wasm", True),  # the glob
        ("https://wasm.example.com/app.txt", False),
        ("https://wasm.example.com/x/../../app.wasm", True),
        ("https://wasm.example.com.evil.net/app.wasm", False),
        ("/tmp/app.wasm", False),
    ],
)
def test_sources_are_prefixes_or_globs(source: str, allowed: bool) -> None:
    rules = policy(components={"sources": ["/opt/wasm/", "https://wasm.example.com/*.wasm"]})
    decision = decide_component(rules, scale(source))
    assert decision.allowed is allowed
    if not allowed:
        assert "not among the allowed sources" in decision.reason


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("https://ghcr.io/org/app.wasm", True),
        ("https://GHCR.io:443/org/app.wasm", True),  # a host pattern without port: any port
        ("http://registry.local:5000/app.wasm", True),
        ("http://registry.local:5001/app.wasm", False),
        ("https://user:pw@evil.net/app.wasm", False),
        ("oci://evil.net/app:1", False),
        ("/local/file.wasm", True),  # registries constrain URLs only
    ],
)
def test_registries_constrain_url_hosts(source: str, allowed: bool) -> None:
    rules = policy(components={"registries": ["ghcr.io", "registry.local:5000"]})
    decision = decide_component(rules, scale(source))
    assert decision.allowed is allowed
    assert "pw" not in decision.reason


def test_digests_need_an_allowed_pin() -> None:
    rules = policy(components={"digests": [f"sha256:{PIN}"]})
    assert decide_component(rules, scale("/x.wasm", PIN)).allowed
    assert decide_component(rules, scale("/x.wasm", f"sha256:{PIN.upper()}")).allowed
    unpinned = decide_component(rules, scale("/x.wasm"))
    assert not unpinned.allowed and "no sha256 pin" in unpinned.reason
    other = decide_component(rules, scale("/x.wasm", "cd" * 32))
    assert not other.allowed and "not an allowed digest" in other.reason


def test_provider_kinds_and_config_hosts() -> None:
    assert not decide_provider(policy(providers={"kinds": []}), redis("redis://db:6379")).allowed
    rules = policy(providers={"kinds": ["keyvalue-redis"], "config_hosts": ["db:6379", "*.cache"]})
    assert decide_provider(rules, redis("redis://:secret@db:6379/0")).allowed
    assert decide_provider(rules, redis("redis://eu.cache/0")).allowed
    denied = decide_provider(rules, redis("redis://:secret@db:6380/0"))
    assert not denied.allowed
    assert denied.reason == "provider config redis_url points to db:6380, not an allowed host"


def test_a_policy_service_is_told_what_starts_but_no_secrets() -> None:
    asked = provider_request(
        "h", {"zone": "a"}, redis("redis://u:secret@db:6379/0"), request_id="r1"
    )
    assert (asked.action, asked.provider_kind, asked.config_hosts) == (
        "start_provider",
        "keyvalue-redis",
        ["db:6379"],
    )
    assert "secret" not in asked.model_dump_json()
    component = component_request("h", {}, scale("https://u:pw@r.io/a.wasm", PIN), "r2")
    assert (component.source, component.sha256) == ("https://u:***@r.io/a.wasm", PIN)


def test_normalized_sources() -> None:
    assert normalized_source("build/../x.wasm") == "x.wasm"
    assert normalized_source("file:///a/./b/../c.wasm") == "file:///a/c.wasm"
    assert normalized_source("https://r.io") == "https://r.io"


def test_policy_files_yaml_json_and_their_errors(tmp_path: Path) -> None:
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("components:\n  sources: [/opt/]\nproviders:\n  kinds: []\n")
    loaded = load_policy(yaml_file)
    assert loaded.components.sources == ("/opt/",) and loaded.providers.kinds == ()
    json_file = tmp_path / "p.json"
    json_file.write_text('{"components": {"digests": ["' + PIN + '"]}}')
    assert load_policy(json_file).components.digests == (PIN,)
    typo = tmp_path / "typo.yaml"
    typo.write_text("components:\n  source: [/opt/]\n")
    with pytest.raises(PolicyFileError, match=r"components\.source: Extra inputs"):
        load_policy(typo)
    bad_pin = tmp_path / "pin.yaml"
    bad_pin.write_text("components: {digests: [abc]}\n")
    with pytest.raises(PolicyFileError, match="not a sha256"):
        load_policy(bad_pin)
    with pytest.raises(PolicyFileError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PolicyFileError, match="not valid YAML/JSON"):
        load_policy(tmp_path / "broken.json")


def test_lattice_host_refuses_a_bad_policy_file(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("providers:\n  kind: []\n")
    result = subprocess.run(
        [LATTICE, "host", "--policy", str(typo), "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "policy file" in result.stderr and "providers.kind" in result.stderr


# -- a real host ----------------------------------------------------------------------------


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Connection]:
    connection = await connect(NatsOptions(nats_server.url))
    yield connection
    await connection.close()


@pytest.fixture
async def start_host(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Start host-a with extra HostConfig fields; shut down at the end."""
    daemons: list[HostDaemon] = []

    async def start(**fields: Any) -> HostDaemon:
        state = tmp_path / "host"
        state.mkdir(exist_ok=True)
        if not (state / "compile-cache").exists():
            (state / "compile-cache").symlink_to(compile_cache)
        config = HostConfig(
            nats=NatsOptions(nats_server.url),
            state_dir=state,
            host_id="host-a",
            http_port=0,
            heartbeat_s=0.2,
            **fields,
        )
        daemon = await HostDaemon.start(config)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        await daemon.shutdown()


async def denials(nc: Connection) -> tuple[asyncio.Queue[PolicyDenied], Any]:
    queue: asyncio.Queue[PolicyDenied] = asyncio.Queue()

    async def on_event(msg: Any) -> None:
        event = decode_event(msg.data)
        assert isinstance(event, PolicyDenied)
        queue.put_nowait(event)

    sub = await nc.subscribe(SUBJECTS.events("policy_denied"), cb=on_event)
    await nc.flush()
    return queue, sub


async def test_a_policy_file_denies_a_source_and_allows_another(
    start_host: Callable[..., Any], nc: Connection, components: dict[str, Path], tmp_path: Path
) -> None:
    allowed_dir = components["hello-wat"].parent
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(f"components:\n  sources: ['{allowed_dir}/hello-*']\n")
    daemon = await start_host(policy_file=policy_file)
    client = LatticeClient(nc)
    queue, sub = await denials(nc)
    with pytest.raises(RemoteError, match=r"denied by policy: component source .*echo.wasm"):
        await client.scale(
            "host-a", ScaleComponent(component_id="echo", source=str(components["echo"]))
        )
    event = await asyncio.wait_for(queue.get(), 5)
    assert event.data.host_id == "host-a" and event.data.what == "start_component"
    assert event.data.component_id == "echo"
    assert "not among the allowed sources" in event.data.reason
    assert "echo" not in daemon.runtime.components
    await client.scale(
        "host-a", ScaleComponent(component_id="hello", source=str(components["hello-wat"]))
    )
    assert [c.component_id for c in (await client.inventory("host-a")).components] == ["hello"]
    await sub.unsubscribe()


async def test_a_policy_file_denies_a_provider_kind(
    start_host: Callable[..., Any], nc: Connection, tmp_path: Path
) -> None:
    policy_file = tmp_path / "policy.json"
    policy_file.write_text('{"providers": {"kinds": []}}')
    daemon = await start_host(policy_file=policy_file)
    queue, sub = await denials(nc)
    with pytest.raises(RemoteError, match="denied by policy: provider kind keyvalue-redis"):
        await LatticeClient(nc).start_provider("host-a", redis("redis://127.0.0.1:1/0"))
    event = await asyncio.wait_for(queue.get(), 5)
    assert (event.data.what, event.data.provider_id, event.data.kind) == (
        "start_provider",
        "p",
        "keyvalue-redis",
    )
    assert daemon.supervisor.providers == {}
    assert not (daemon.config.state_dir / "providers" / "p.log").exists()  # nothing spawned
    await sub.unsubscribe()


async def test_a_policy_file_checks_where_a_provider_connects(
    start_host: Callable[..., Any], nc: Connection, tmp_path: Path, redis_server: RedisServer
) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("providers:\n  kinds: [keyvalue-redis]\n  config_hosts: ['127.0.0.1']\n")
    daemon = await start_host(policy_file=policy_file)
    client = LatticeClient(nc)
    elsewhere = redis("redis://:secret@10.1.2.3:6379/0")
    with pytest.raises(RemoteError, match=r"config redis_url points to 10\.1\.2\.3:6379") as caught:
        await client.start_provider("host-a", elsewhere)
    assert "secret" not in str(caught.value)
    started = await client.start_provider("host-a", redis_server.provider("kv"))
    assert started.healthy and sorted(daemon.supervisor.providers) == ["kv"]


async def test_a_policy_service_decides(
    start_host: Callable[..., Any], nc: Connection, components: dict[str, Path]
) -> None:
    asked: list[PolicyRequest] = []

    async def decide(request: PolicyRequest) -> PolicyDecision:
        asked.append(request)
        if request.component_id == "echo":
            return PolicyDecision(permitted=False, reason="echo is not approved")
        return PolicyDecision(permitted=True)

    service = await serve_policy(nc, SUBJECTS.policy, decide)
    try:
        daemon = await start_host(policy_subject="", labels=["zone=a"])  # "" = SUBJECTS.policy
        client = LatticeClient(nc)
        queue, sub = await denials(nc)
        with pytest.raises(RemoteError, match="denied by policy: echo is not approved"):
            await client.scale(
                "host-a", ScaleComponent(component_id="echo", source=str(components["echo"]))
            )
        assert (await asyncio.wait_for(queue.get(), 5)).data.reason == "echo is not approved"
        hello = ScaleComponent(component_id="hello", source=str(components["hello-wat"]))
        await client.scale("host-a", hello)
        assert sorted(daemon.runtime.components) == ["hello"]
        first = asked[0]
        assert (first.action, first.host_id, first.host_labels["zone"]) == (
            "start_component",
            "host-a",
            "a",
        )
        # The same request again (as a link change re-applies it) is not asked again.
        await client.scale("host-a", hello)
        assert [r.component_id for r in asked] == ["echo", "hello"]
        await sub.unsubscribe()
    finally:
        await service.close()


async def test_without_an_answer_a_policy_subject_denies(
    start_host: Callable[..., Any], nc: Connection, components: dict[str, Path]
) -> None:
    daemon = await start_host(policy_subject="acme.policy.v1", policy_timeout_s=0.5)
    client = LatticeClient(nc)
    queue, sub = await denials(nc)
    with pytest.raises(RemoteError, match=r"denied by policy: no decision .*acme.policy.v1"):
        await client.scale(
            "host-a", ScaleComponent(component_id="hello", source=str(components["hello-wat"]))
        )
    assert "no decision" in (await asyncio.wait_for(queue.get(), 5)).data.reason

    # A service that is there but too slow is no answer either.
    async def slow(_request: PolicyRequest) -> PolicyDecision:
        await asyncio.sleep(2)
        return PolicyDecision(permitted=True)

    service = await serve_policy(nc, "acme.policy.v1", slow)
    try:
        with pytest.raises(RemoteError, match=r"did not reply within 0.5 s"):
            await client.scale(
                "host-a", ScaleComponent(component_id="hello", source=str(components["hello-wat"]))
            )
    finally:
        await service.close()
    assert daemon.runtime.components == {}
    await sub.unsubscribe()
