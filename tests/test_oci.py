"""Components from OCI registries and the lattice's object store, with a real registry.

A real ``docker-registry`` (the CNCF distribution registry) per test, anonymous or
behind basic auth; the ``lattice`` CLI as a user runs it; host daemons as processes
started in directories of their own, so nothing reaches them but the lattice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from controller.service import Controller
from deploy.blobs import ContentCache
from deploy.oci_auth import Credentials, RegistryOptions, parse_challenge
from deploy.sources import ObjectSource, OciSource, Reference, classify, pin_images
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.natsd import NatsServer, free_port
from lattice.specs import SpecStore
from tests.lattice_procs import HostProcess, wait_for_hosts
from tests.registry_fixture import Registry, TokenProxy

LATTICE = str(Path(sys.executable).parent / "lattice")
HELLO = b"Hello from wasmlattice!\n"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    server = Registry(tmp_path / "registry").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Registry]:
    server = Registry(tmp_path / "auth-registry", user="alice", password="s3cret-pw").start()
    try:
        yield server
    finally:
        server.stop()


async def lattice(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the ``lattice`` CLI; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        LATTICE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def error_line(stderr: str) -> str:
    """The one line a failed command prints (progress lines are dimmed and come first)."""
    lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, stderr
    assert not any("Traceback" in line for line in stderr.splitlines()), stderr
    return lines[0]


# -- pure parts ---------------------------------------------------------------------------


def test_references_and_sources(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    ref = Reference.parse(f"oci://GHCR.io/wasmcloud/components/hello:0.1.0@{digest}")
    assert ref == Reference("ghcr.io", "wasmcloud/components/hello", "0.1.0", digest)
    assert str(ref) == f"ghcr.io/wasmcloud/components/hello@{digest}"
    assert Reference.parse("localhost:5000/x:1") == Reference("localhost:5000", "x", "1")
    assert Reference.parse("oci://ghcr.io/x") == Reference("ghcr.io", "x", "latest")
    for not_a_ref in ("ghcr.io/x", "build/components/x.wasm", "./a.b/c:1", "/abs/ghcr.io/x:1"):
        assert Reference.parse(not_a_ref) is None, not_a_ref
    assert classify("nats-object://" + digest) == ObjectSource("ab" * 32)
    assert classify("127.0.0.1:5000/demo/hello:1") == OciSource(
        Reference("127.0.0.1:5000", "demo/hello", "1")
    )
    # In a spec, a file that exists wins over a reference that looks the same.
    (tmp_path / "ghcr.io").mkdir()
    (tmp_path / "ghcr.io" / "x:1").write_bytes(b"")
    assert not isinstance(classify("ghcr.io/x:1", tmp_path), OciSource)


def test_pinning_rewrites_only_component_images() -> None:
    text = """\
apiVersion: core.oam.dev/v1beta1  # a comment that stays
kind: Application
metadata: {name: a, annotations: {version: v1}}
spec:
  components:
    - name: web
      type: component
      properties:
        image: "reg.test/web:1"   # the tag
    - name: http
      type: capability
      properties:
        image: reg.test/web:1
"""
    pinned = pin_images(text, {"reg.test/web:1": "reg.test/web@sha256:" + "0" * 64})
    assert (
        pinned.splitlines()[8] == "        image: reg.test/web@sha256:" + "0" * 64 + "   # the tag"
    )
    assert pinned.splitlines()[12] == "        image: reg.test/web:1"  # a capability: untouched
    assert pinned.splitlines()[0].endswith("# a comment that stays")


def test_credentials_from_docker_config_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    config = tmp_path / "config.json"
    auth = base64.b64encode(b"bob:hunter2").decode()
    config.write_text(json.dumps({"auths": {"https://reg.test:5000/v1/": {"auth": auth}}}))
    for name in ("WASMLATTICE_REGISTRY_USER", "WASMLATTICE_REGISTRY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    options = RegistryOptions.from_env(config_path=config)
    creds = options.credentials("reg.test:5000")
    assert creds == Credentials("bob", "hunter2", str(config))
    assert "hunter2" not in repr(creds) and "hunter2" not in repr(options)
    assert options.credentials("other.test") is None
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert RegistryOptions.from_env().credentials("reg.test:5000") == creds
    monkeypatch.setenv("WASMLATTICE_REGISTRY_USER", "carol")
    monkeypatch.setenv("WASMLATTICE_REGISTRY_PASSWORD", "pw")
    monkeypatch.setenv("WASMLATTICE_REGISTRY_HOST", "only.test")
    from_env = RegistryOptions.from_env()
    assert from_env.credentials("only.test") == Credentials("carol", "pw", "environment")
    assert from_env.credentials("reg.test:5000") == creds  # the env pair is for only.test
    assert from_env.is_insecure("127.0.0.1:5000") and not from_env.is_insecure("reg.test")


def test_challenges() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.test/token",service="registry.test",'
        'scope="repository:a/b:pull,push"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.test/token",
        "service": "registry.test",
        "scope": "repository:a/b:pull,push",
    }
    basic = parse_challenge('Basic realm="test"')
    assert basic is not None and (basic.scheme, basic.params) == ("basic", {"realm": "test"})


def test_cache_drops_a_damaged_blob(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    digest = hashlib.sha256(b"bytes").hexdigest()
    cache.put(digest, b"bytes")
    assert cache.get("sha256:" + digest) == b"bytes"
    cache.path(digest).write_bytes(b"other")
    assert cache.get(digest) is None and not cache.path(digest).exists()


# -- push and pull ------------------------------------------------------------------------


async def test_push_then_pull_the_cncf_wasm_layout(
    registry: Registry, components: dict[str, Path], tmp_path: Path
) -> None:
    ref = f"{registry.host}/demo/hello:0.1.0"
    code, out, err = await lattice("push", str(components["hello-wat"]), ref, "-o", "json")
    assert code == 0, err
    pushed = json.loads(out)
    digest = pushed["digest"]
    assert pushed["pinned"] == f"{registry.host}/demo/hello@{digest}"
    async with aiohttp.ClientSession() as http:
        url = f"http://{registry.host}/v2/demo/hello/manifests/0.1.0"
        headers = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        async with http.get(url, headers=headers) as response:
            raw = await response.read()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    manifest = json.loads(raw)
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/wasm"
    assert layer["annotations"] == {"org.opencontainers.image.title": "hello-wat.wasm"}
    annotations = manifest["annotations"]
    assert annotations["org.opencontainers.image.version"] == "0.1.0"
    assert annotations["org.opencontainers.image.title"] == "hello-wat.wasm"
    assert time.strptime(annotations["org.opencontainers.image.created"], "%Y-%m-%dT%H:%M:%SZ")

    out_file = tmp_path / "pulled.wasm"
    code, out, err = await lattice(
        "pull", f"{registry.host}/demo/hello@{digest}", "-o", str(out_file)
    )
    assert code == 0, err
    assert out_file.read_bytes() == components["hello-wat"].read_bytes()
    assert f"digest: {digest}" in out
    # Without -o: the title annotation names the file, in the working directory.
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    process = await asyncio.create_subprocess_exec(
        LATTICE, "pull", ref, cwd=workdir, stdout=asyncio.subprocess.DEVNULL
    )
    assert await process.wait() == 0
    assert (workdir / "hello-wat.wasm").read_bytes() == components["hello-wat"].read_bytes()


async def test_basic_auth_from_a_docker_config_and_bad_credentials(
    auth_registry: Registry, components: dict[str, Path], tmp_path: Path
) -> None:
    ref = f"{auth_registry.host}/private/hello:1"
    clean = {"WASMLATTICE_REGISTRY_USER": "", "DOCKER_CONFIG": str(tmp_path / "none")}
    code, _, err = await lattice("push", str(components["hello-wat"]), ref, env=clean)
    assert code == 1
    assert "needs credentials and none were found" in error_line(err)

    config = tmp_path / "docker.json"
    config.write_text(
        json.dumps({"auths": {auth_registry.host: {"username": "alice", "password": "s3cret-pw"}}})
    )
    code, out, err = await lattice(
        "push", str(components["hello-wat"]), ref, "--registry-config", str(config), env=clean
    )
    assert code == 0, err
    env = {**clean, "DOCKER_CONFIG": str(tmp_path)}
    (tmp_path / "config.json").write_text(config.read_text())
    code, out, err = await lattice("pull", ref, "-o", str(tmp_path / "a.wasm"), env=env)
    assert code == 0, err
    assert (tmp_path / "a.wasm").read_bytes() == components["hello-wat"].read_bytes()

    wrong = {"WASMLATTICE_REGISTRY_USER": "alice", "WASMLATTICE_REGISTRY_PASSWORD": "guess"}
    code, out, err = await lattice("pull", ref, env=wrong)
    assert code == 1
    line = error_line(err)
    assert "refused the credentials for user 'alice' (from environment)" in line
    assert "guess" not in out + err


async def _push_not_wasm(registry: Registry, repository: str) -> None:
    """A container-image-like artifact: a tar layer, an image config."""
    layer, config = b"not a component", b"{}"
    base = f"http://{registry.host}/v2/{repository}"
    async with aiohttp.ClientSession() as http:
        for blob in (layer, config):
            async with http.post(f"{base}/blobs/uploads/") as response:
                location = response.headers["Location"]
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            sep = "&" if "?" in location else "?"
            async with http.put(f"{location}{sep}digest={digest}", data=blob) as response:
                assert response.status == 201
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                    "size": len(layer),
                }
            ],
        }
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        async with http.put(
            f"{base}/manifests/1", data=json.dumps(manifest).encode(), headers=headers
        ) as response:
            assert response.status == 201


async def test_each_failure_is_one_clear_error(
    registry: Registry, components: dict[str, Path]
) -> None:
    code, _, err = await lattice("push", str(components["hello-wat"]), f"{registry.host}/d/h:1")
    assert code == 0, err
    await _push_not_wasm(registry, "d/image")
    closed = f"127.0.0.1:{free_port()}"
    cases = {
        f"{registry.host}/d/h:2": "no such tag '2' in the registry",
        f"{registry.host}/d/h@sha256:{'0' * 64}": "no such digest in the registry",
        f"{registry.host}/d/image:1": (
            "is not a wasm component artifact: config application/vnd.oci.image.config.v1+json, "
            "layers application/vnd.oci.image.layer.v1.tar+gzip"
        ),
        f"{closed}/d/h:1": f"cannot connect to {closed}",
    }
    for ref, expected in cases.items():
        code, _, err = await lattice("pull", ref, "-o", os.devnull)
        assert code == 1, ref
        assert expected in error_line(err), err


# -- deploying ----------------------------------------------------------------------------


def spec(version: str, images: dict[str, str]) -> str:
    """An app with one replica of each component on every host, each routed at /<name>."""
    text = f"""\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: pinned
  annotations:
    version: {version}
spec:
  components:
"""
    for name, image in images.items():
        text += f"""\
    - name: {name}
      type: component
      properties:
        image: {image}
      traits:
        - type: daemonscaler
          properties:
            instances: 1
    - name: route-{name}
      type: capability
      properties:
        provider: http-server
      traits:
        - type: link
          properties:
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            target: {name}
            source:
              config:
                - name: route-{name}
                  properties:
                    path: /{name}
"""
    return text


@pytest.fixture
async def two_hosts(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> AsyncIterator[tuple[LatticeClient, dict[str, HostProcess]]]:
    """Two hosts, each started in an empty directory of its own, and a controller."""
    hosts: dict[str, HostProcess] = {}
    nc = await connect(NatsOptions(nats_server.url))
    controller = Controller(nc, tick_s=0.2, lease_ttl_s=1.5)
    task: asyncio.Task[None] | None = None
    try:
        for host_id in ("east", "west"):
            home = tmp_path / f"home-{host_id}"
            home.mkdir()
            hosts[host_id] = HostProcess(
                nats_server.url,
                tmp_path / host_id,
                host_id,
                heartbeat_s=0.5,
                compile_cache=compile_cache,
                cwd=home,
            ).start()
        client = LatticeClient(nc)
        await wait_for_hosts(client, set(hosts))
        await controller.start()
        task = asyncio.create_task(controller.run(), name="controller")
        yield client, hosts
    finally:
        if task is not None:
            controller.request_stop()
            await task
        for host in hosts.values():
            host.stop()
        await nc.close()


async def serves(url: str, body: bytes, expected: bytes, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    last: object = None
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.post(url, data=body) as response:
                    last = (response.status, await response.read())
                    if last == (200, expected):
                        return
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not answer {expected!r} in time (last: {last!r})")


async def test_push_then_deploy_to_two_hosts_with_no_shared_files(
    registry: Registry,
    two_hosts: tuple[LatticeClient, dict[str, HostProcess]],
    nats_server: NatsServer,
    components: dict[str, Path],
    tmp_path: Path,
) -> None:
    client, hosts = two_hosts
    ref = f"{registry.host}/demo/app:1"
    code, out, err = await lattice("push", str(components["hello-wat"]), ref, "-o", "json")
    assert code == 0, err
    hello_manifest = json.loads(out)["digest"]
    # The echo component is a file next to the spec: no host can read that directory.
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    shutil.copy(components["echo"], spec_dir / "echo.wasm")
    (spec_dir / "app.yaml").write_text(spec("v1", {"hello": ref, "echo": "echo.wasm"}))
    nats = ("--nats-url", nats_server.url)
    code, out, err = await lattice("apply", "-f", str(spec_dir / "app.yaml"), "--no-deploy", *nats)
    assert code == 0, err

    # The tag moves after apply: the stored version still names the first push.
    code, _, err = await lattice("push", str(components["echo"]), ref)
    assert code == 0, err
    _, stored = await SpecStore(client.nc, client.subjects).get("pinned", "v1")
    echo_digest = hashlib.sha256(components["echo"].read_bytes()).hexdigest()
    assert f"image: {registry.host}/demo/app@{hello_manifest}" in stored
    assert f"image: nats-object://sha256:{echo_digest}" in stored

    code, _, err = await lattice("deploy", "pinned", *nats)
    assert code == 0, err
    for host in hosts.values():
        await serves(f"{host.http_url}/hello", b"ping", HELLO)
        await serves(f"{host.http_url}/echo", b"ping", b"ping")
    # Each host keeps what it pulled by digest: the hello layer and the echo object.
    hello_layer = hashlib.sha256(components["hello-wat"].read_bytes()).hexdigest()
    for host in hosts.values():
        cached = {p.name for p in (host.state_dir / "artifacts" / "sha256").iterdir()}
        assert {hello_manifest.removeprefix("sha256:"), hello_layer, echo_digest} <= cached


async def test_a_restarted_host_runs_from_its_cache(
    registry: Registry,
    nats_server: NatsServer,
    components: dict[str, Path],
    compile_cache: Path,
    tmp_path: Path,
) -> None:
    ref = f"{registry.host}/demo/cached:1"
    code, out, err = await lattice("push", str(components["hello-wat"]), ref, "-o", "json")
    assert code == 0, err
    pinned = json.loads(out)["pinned"]
    host = HostProcess(
        nats_server.url, tmp_path / "h", "solo", heartbeat_s=0.5, compile_cache=compile_cache
    ).start()
    try:
        nc = await connect(NatsOptions(nats_server.url))
        try:
            client = LatticeClient(nc)
            await wait_for_hosts(client, {"solo"})
            code, _, err = await lattice(
                "start", "component", "hello", pinned, "--nats-url", nats_server.url
            )
            assert code == 0, err
            host.stop()
            registry.stop()  # nothing to pull from now
            # The same state dir (its compile-cache link is there already).
            host = HostProcess(nats_server.url, host.state_dir, "solo", heartbeat_s=0.5).start()
            await wait_for_hosts(client, {"solo"})
            code, _, err = await lattice(
                "start", "component", "hello", pinned, "--nats-url", nats_server.url
            )
            assert code == 0, err
            assert [c.component_id for c in (await client.inventory("solo")).components] == [
                "hello"
            ]
        finally:
            await nc.close()
    finally:
        host.stop()


async def test_apply_refuses_what_it_cannot_pin(
    registry: Registry, nats_server: NatsServer, tmp_path: Path
) -> None:
    nats = ("--nats-url", nats_server.url)
    path = tmp_path / "app.yaml"
    path.write_text(spec("v1", {"hello": f"{registry.host}/demo/missing:1"}))
    code, _, err = await lattice("apply", "-f", str(path), *nats)
    assert code == 1
    assert "no such tag '1' in the registry" in error_line(err)
    path.write_text(spec("v1", {"hello": "not-a-component.wasm"}))
    (tmp_path / "not-a-component.wasm").write_bytes(b"hello")
    code, _, err = await lattice("apply", "-f", str(path), *nats)
    assert code == 1
    assert "is not a component: not WebAssembly" in error_line(err)
    nc = await connect(NatsOptions(nats_server.url))
    try:
        assert await SpecStore(nc, LatticeClient(nc).subjects).apps() == []
    finally:
        await nc.close()


async def test_bearer_token_flow_and_blob_redirects(
    registry: Registry, components: dict[str, Path], tmp_path: Path
) -> None:
    creds = {"WASMLATTICE_REGISTRY_USER": "alice", "WASMLATTICE_REGISTRY_PASSWORD": "s3cret-pw"}
    proxy = await TokenProxy(registry).start()
    try:
        ref = f"{proxy.host}/team/hello:1"
        code, _, err = await lattice("push", str(components["hello-wat"]), ref, env=creds)
        assert code == 0, err
        out_file = tmp_path / "hello.wasm"
        code, _, err = await lattice("pull", ref, "-o", str(out_file), env=creds)
        assert code == 0, err  # the blob came through a same-host redirect
        assert out_file.read_bytes() == components["hello-wat"].read_bytes()
        assert proxy.tokens_issued >= 2
        wrong = {**creds, "WASMLATTICE_REGISTRY_PASSWORD": "nope"}
        code, out, err = await lattice("pull", ref, env=wrong)
        assert code == 1 and "refused the credentials for user 'alice'" in error_line(err)
        assert "nope" not in out + err
    finally:
        await proxy.stop()
    elsewhere = await TokenProxy(registry, redirect_elsewhere=True).start()
    try:
        ref = f"{elsewhere.host}/team/hello:1"
        code, _, err = await lattice("pull", ref, "-o", os.devnull, env=creds)
        assert code == 1
        assert "redirected a download to a non-https URL" in error_line(err)
    finally:
        await elsewhere.stop()
