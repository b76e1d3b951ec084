"""wadm manifests accepted as wadm accepts them (issue 11, point 4), secrets, first-party
provider images, and ``lattice app validate`` / ``app get``.

The manifest cases are pure (``deploy``); then the published-style examples in
examples/specs/wadm, their images pushed to a real registry under wasmCloud's
repository names with only the registry host changed, applied to a real lattice; then
secrets end to end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from catalog.kinds import SUPPORTED_IMAGES
from controller.model import HostView, Observed
from controller.reconcile import reconcile
from controller.service import Controller
from deploy.errors import ManifestError, ManifestReferenceError, ManifestSchemaError
from deploy.manifest import check_manifest, load_manifest, load_manifest_file
from deploy.model import CapabilityDecl, SecretRef
from deploy.names import generated_version, version_problem
from lattice.auth import permissions
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.natsd import NatsServer
from lattice.secrets import SealingKey, SecretError, SecretStore, seal
from lattice.specs import SpecStore
from lattice.subjects import Subjects
from tests.lattice_procs import LATTICE, HostProcess, host_processes, wait_for_hosts
from tests.registry_fixture import Registry
from tests.test_example_specs import deployed, fetch, until

WADM = Path(__file__).resolve().parent.parent / "examples" / "specs" / "wadm"
REPO = WADM.parent.parent.parent

HEAD = """\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: app
spec:
"""


SCALED = "- type: spreadscaler\n  properties: {instances: 1}\n"


def manifest(body: str, head: str = HEAD) -> str:
    return head + textwrap.indent(textwrap.dedent(body), "  ")


def component(name: str = "web", extra: str = "", traits: str = SCALED) -> str:
    return textwrap.indent(
        f"- name: {name}\n  type: component\n  properties:\n    image: /c/{name}.wasm\n"
        + textwrap.indent(textwrap.dedent(extra), "    ")
        + ("  traits:\n" + textwrap.indent(textwrap.dedent(traits), "    ") if traits else ""),
        "  ",
    )


KV = (
    "  - name: kv\n    type: capability\n"
    "    properties: {image: ghcr.io/wasmcloud/keyvalue-nats:0.3.1}\n"
)


def kv_link(name: str = "default", config: str = "b1", package: str = "keyvalue") -> str:
    return f"""\
- type: link
  properties:
    namespace: wasi
    package: {package}
    interfaces: [store]
    name: {name}
    target: {{name: kv, config: [{{name: {config}, properties: {{bucket: {config}}}}}]}}
"""


# One live host, so whatever has a scaler is placed.
ONE_HOST = Observed(hosts={"h": HostView("h", {}, 0.0)})


def spec_of(*components: str, policies: str = "") -> str:
    return manifest("components:\n" + "".join(components) + policies)


def refused(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_manifest(text, "t.yaml")
    return info.value


# -- point 4, rule by rule ------------------------------------------------------------


def test_version_is_optional_and_generated_sortable() -> None:
    spec = load_manifest(spec_of(component()), "t.yaml")
    assert spec.version.startswith("v") and len(spec.version) == 27
    assert version_problem(spec.version) is None
    earlier = generated_version(1_700_000_000_000, bytes(10))
    later = generated_version(1_700_000_000_001, bytes(10))
    assert earlier < later and generated_version(1_700_000_000_000, bytes(10)) == earlier
    # A stored spec without a version reads back under the version it was stored as.
    assert load_manifest(spec_of(component()), "t.yaml", version="v9").version == "v9"


def test_component_without_scaler_is_accepted_and_reported_not_placed() -> None:
    spec = load_manifest(spec_of(component(traits=""), component("other")), "t.yaml")
    assert spec.components[0].scaler is None
    plan = reconcile([spec], ONE_HOST, {}, 0.0, 5.0)
    status = plan.status["app"]
    (row,) = [c for c in status.components if c.component == "web"]
    assert "not placed" in row.reason and row.desired == 0
    assert status.state != "failed"  # the app is not failed by it
    assert not any(getattr(c, "component_id", "") == "app--web" for c in plan.commands)


def test_several_links_on_one_interface_when_names_differ() -> None:
    two = component(traits=SCALED + kv_link("a", "b1") + kv_link("b", "b2"))
    spec = load_manifest(spec_of(two, KV), "t.yaml")
    assert [link.name for link in spec.links] == ["a", "b"]
    same = component(traits=SCALED + kv_link("a", "b1") + kv_link("a", "b2"))
    error = refused(spec_of(same, KV))
    assert "duplicate link" in str(error) and error.problems[0].line is not None


def test_named_config_is_referenced_by_name_and_missing_one_reported() -> None:
    extra = "config:\n  - name: shared\n  - name: inline\n    properties: {a: '1'}\n"
    linked = component(extra=extra, traits=SCALED + kv_link(config="b1"))
    named_link = linked.replace("{name: b1, properties: {bucket: b1}}", "{name: buckets}")
    spec = load_manifest(spec_of(named_link, KV), "t.yaml")
    (web,) = spec.components
    assert web.config_names == ("shared",) and web.config == (("a", "1"),)
    assert spec.links[0].target_config_names == ("buckets",)
    plan = reconcile([spec], ONE_HOST, {}, 0.0, 5.0, named_config={})
    reasons = " ".join(plan.status["app"].reasons)
    assert "named config 'shared' is not stored" in reasons
    assert "named config 'buckets' is not stored" in reasons
    found = {"shared": {"x": "1"}, "buckets": {"bucket": "from-lattice"}}
    plan = reconcile([spec], ONE_HOST, {}, 0.0, 5.0, named_config=found)
    assert not plan.status["app"].reasons
    (link,) = [c for c in plan.commands if hasattr(c, "link_key")]
    assert dict(link.config)["bucket"] == "from-lattice"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("interface", "package", "warned"),
    [
        ("store", "keyvalu", "wasi has no package 'keyvalu'"),  # unknown package, known ns
        ("stores", "keyvalue", "wasi:keyvalue has atomics"),  # misnamed interface
    ],
)
def test_wadm_warnings(interface: str, package: str, warned: str) -> None:
    link = kv_link(package=package).replace("[store]", f"[{interface}]")
    checked = check_manifest(spec_of(component(traits=SCALED + link), KV), "t.yaml")
    (warning,) = checked.warnings
    assert warned in str(warning) and warning.line is not None


def test_own_namespaces_are_not_warned_about() -> None:
    link = kv_link().replace("namespace: wasi", "namespace: acme")
    assert check_manifest(spec_of(component(traits=SCALED + link), KV), "t.yaml").warnings == ()


def test_unknown_trait_type_is_a_warning_naming_it() -> None:
    traits = SCALED + "- type: autoscaler\n  properties: {max: 3}\n"
    checked = check_manifest(spec_of(component(traits=traits)), "t.yaml")
    (warning,) = checked.warnings
    assert "unknown trait type 'autoscaler' is ignored" in str(warning)
    assert str(warning).startswith("t.yaml:")


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        (spec_of(component(), component()), ManifestReferenceError, "duplicate component name"),
        (
            spec_of(component(extra="id: same\n"), component("b", extra="id: same\n")),
            ManifestReferenceError,
            "duplicate component id 'same'",
        ),
        (
            spec_of(component(traits=SCALED + kv_link() + kv_link(config="b2")), KV),
            ManifestReferenceError,
            "duplicate link",
        ),
        (
            spec_of(component(traits=SCALED + kv_link("a") + kv_link("b")), KV),
            ManifestReferenceError,
            "duplicate link config name 'b1'",
        ),
        (
            spec_of(component(traits=SCALED + kv_link())),
            ManifestReferenceError,
            "link target 'kv' is not a component of this app",
        ),
        (spec_of(component(extra="colour: red\n")), ManifestSchemaError, "unknown field"),
    ],
)
def test_wadm_errors(body: str, kind: type[ManifestError], message: str) -> None:
    error = refused(body)
    assert isinstance(error, kind)
    assert message in str(error)
    assert all(p.line is not None for p in error.problems)


POLICY = """\
policies:
  - name: nats-kv
    type: policy.secret.wasmcloud.dev/v1alpha1
    properties: {backend: nats-kv}
"""
SECRET = (
    "secrets:\n  - name: api_password\n    properties: {policy: nats-kv, key: api, field: pw}\n"
)


def test_secret_references() -> None:
    spec = load_manifest(spec_of(component(extra=SECRET), policies=POLICY), "t.yaml")
    assert spec.components[0].secrets == (SecretRef("api_password", "api", "pw", "nats-kv"),)
    assert "unknown policy 'nats-kv'" in str(refused(spec_of(component(extra=SECRET))))
    wrong = POLICY.replace("policy.secret.wasmcloud.dev/v1alpha1", "policy.other/v1")
    assert "not a secret policy" in str(refused(spec_of(component(extra=SECRET), policies=wrong)))


# -- point 5: wasmCloud's first-party provider images ------------------------------------


def test_first_party_images_with_their_config_keys() -> None:
    spec = load_manifest_file(WADM / "keyvalue-counter-redis.yaml")
    (redis, http) = spec.capabilities
    assert (redis.provider, dict(redis.config)) == (
        "keyvalue-redis",
        {"redis_url": "redis://127.0.0.1:6379"},
    )
    (kv_link_,) = [link for link in spec.links if link.target == "kvredis"]
    assert kv_link_.target_config == ()  # the url became the provider's config
    assert http.provider == "http-server"
    nats = load_manifest_file(WADM / "keyvalue-counter.yaml")
    assert [c.provider for c in nats.capabilities] == ["keyvalue", "http-server"]
    assert load_manifest_file(WADM / "hello.yaml").capabilities == (
        CapabilityDecl("httpserver", "http-server"),
    )


def test_unknown_capability_image_passes_and_is_reported_in_status() -> None:
    image = "ghcr.io/wasmcloud/messaging-nats:0.23.0"
    nats = f"  - name: bus\n    type: capability\n    properties: {{image: '{image}'}}\n"
    link = (
        kv_link()
        .replace("name: kv,", "name: bus,")
        .replace("package: keyvalue", "package: messaging")
    )
    spec = load_manifest(spec_of(component(traits=SCALED + link), nats), "t.yaml")
    assert spec.capabilities == (CapabilityDecl("bus", "", image=image),)
    plan = reconcile([spec], ONE_HOST, {}, 0.0, 5.0)
    (row,) = [c for c in plan.status["app"].components if c.component == "bus"]
    assert image in row.reason and all(name in row.reason for name in SUPPORTED_IMAGES)
    assert not [c for c in plan.commands if hasattr(c, "link_key")]  # its link left out
    assert [c.component for c in plan.status["app"].components] == ["bus", "web"]


# -- secrets, pure parts ----------------------------------------------------------------


def test_sealing_opens_only_with_the_key(tmp_path: Path) -> None:
    key = SealingKey.load_or_create(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert SealingKey.load_or_create(tmp_path / "k").public == key.public
    sealed = seal(key.public, b"hunter2")
    assert b"hunter2" not in sealed.encode() and key.open(sealed) == b"hunter2"
    with pytest.raises(SecretError):
        SealingKey.generate().open(sealed)


def test_hosts_may_not_read_the_secrets_bucket() -> None:
    subjects = Subjects()
    host = permissions("host", subjects, "h1", "UKEY")
    denied = host["pub"]["deny"]
    assert "$KV.wasmlattice-default-secrets.>" in denied
    assert "$JS.API.*.*.KV_wasmlattice-default-secrets" in denied


# -- lattice app validate (offline) -----------------------------------------------------


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LATTICE, *args], capture_output=True, text=True, timeout=60, input=stdin)


def test_app_validate_is_offline_with_warnings_errors_and_exit_code(tmp_path: Path) -> None:
    ok = run_cli("app", "validate", str(WADM / "hello.yaml"), "--nats-url", "nats://127.0.0.1:1")
    assert ok.returncode != 0  # no such option: validate needs no NATS at all
    ok = run_cli("app", "validate", str(WADM / "hello.yaml"))
    assert ok.returncode == 0, ok.stderr
    assert "valid: app hello-world, version none: generated at apply" in ok.stdout
    warned = tmp_path / "warned.yaml"
    text = (WADM / "hello.yaml").read_text().replace("incoming-handler", "incoming_handler")
    warned.write_text(text)
    result = run_cli("app", "validate", str(warned))
    assert result.returncode == 0
    assert f"warning: {warned}:" in result.stderr and "incoming_handler" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("target: http-component", "target: nobody"))
    result = run_cli("app", "validate", str(bad))
    assert result.returncode == 1
    assert f"error: {bad}:" in result.stderr and "'nobody'" in result.stderr


# -- published wadm manifests, only the registry host changed -------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    server = Registry(tmp_path / "registry").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def one_host(nats_server: NatsServer, tmp_path: Path, compile_cache: Path) -> Iterator[HostProcess]:
    with host_processes(
        nats_server.url, tmp_path, {"h1": {}}, heartbeat_s=0.3, compile_cache=compile_cache
    ) as procs:
        yield procs["h1"]


@pytest.fixture
async def lattice_with_controller(
    nats_server: NatsServer, one_host: HostProcess, tmp_path: Path
) -> AsyncIterator[SpecStore]:
    nc = await connect(NatsOptions(nats_server.url))
    await wait_for_hosts(LatticeClient(nc), {"h1"})
    key = SealingKey.load_or_create(tmp_path / "secrets.key")
    controller = Controller(nc, host_timeout_s=1.0, tick_s=0.2, secrets_key=key)
    await controller.start()
    task = asyncio.create_task(controller.run(), name="controller")
    try:
        yield SpecStore(nc, LatticeClient(nc).subjects)
    finally:
        controller.request_stop()
        await task
        await nc.close()


def push(path: Path, ref: str) -> None:
    result = run_cli("push", str(path), ref)
    assert result.returncode == 0, result.stderr


def on_registry(spec: Path, registry: Registry, tmp_path: Path) -> Path:
    """``spec`` with only the registry host changed."""
    copy = tmp_path / spec.name
    copy.write_text(spec.read_text().replace("ghcr.io/", f"{registry.host}/"))
    return copy


async def test_published_wadm_manifests_apply_and_serve(
    lattice_with_controller: SpecStore,
    one_host: HostProcess,
    nats_server: NatsServer,
    registry: Registry,
    components: dict[str, Path],
    tmp_path: Path,
) -> None:
    store = lattice_with_controller
    # This project's builds, under the repository names the manifests use.
    base = f"{registry.host}/wasmcloud/components"
    await asyncio.to_thread(push, components["hello"], f"{base}/http-hello-world-rust:0.1.0")
    await asyncio.to_thread(push, components["counter"], f"{base}/http-keyvalue-counter-rust:0.1.0")
    url = nats_server.url

    hello = on_registry(WADM / "hello.yaml", registry, tmp_path)
    result = await asyncio.to_thread(run_cli, "apply", "-f", str(hello), "--nats-url", url)
    assert result.returncode == 0, result.stderr
    await until(lambda: deployed(store, "hello-world"), "hello-world deployed")

    # The manifest's http-server link says `address: 0.0.0.0:8000`: a listener of its
    # own on the host running the component (wasmCloud's address mode).
    served_at = "http://127.0.0.1:8000"

    async def hello_answers() -> bool:
        return (await fetch(f"{served_at}/"))[1] == "Hello from wasmlattice!\n"

    await until(hello_answers, "hello answers")
    (index,) = [i for i in await store.apps() if i.name == "hello-world"]
    assert index.deployed is not None and index.deployed.startswith("v")  # generated
    shown = await asyncio.to_thread(run_cli, "app", "get", "hello-world", "--nats-url", url)
    assert shown.returncode == 0, shown.stderr
    assert "name: hello-world" in shown.stdout and "@sha256:" in shown.stdout  # pinned
    by_version = await asyncio.to_thread(
        run_cli, "app", "get", "hello-world", "--version", index.deployed, "--nats-url", url
    )
    assert by_version.stdout == shown.stdout
    missing = await asyncio.to_thread(
        run_cli, "app", "get", "hello-world", "--version", "v0", "--nats-url", url
    )
    assert missing.returncode != 0 and "no version 'v0'" in missing.stderr

    # Both claim "/" (wasmCloud gives each its own address): one at a time here.
    deleted = await asyncio.to_thread(run_cli, "delete", "hello-world", "--nats-url", url)
    assert deleted.returncode == 0, deleted.stderr
    counter = on_registry(WADM / "keyvalue-counter.yaml", registry, tmp_path)

    async def counter_applies() -> bool:
        result = await asyncio.to_thread(run_cli, "apply", "-f", str(counter), "--nats-url", url)
        return result.returncode == 0

    await until(counter_applies, "kv-counter applied once hello-world's route is gone")
    await until(lambda: deployed(store, "kv-counter"), "kv-counter deployed")

    async def counts() -> bool:
        status, text = await fetch(f"{served_at}/")
        return status == 200 and '"count"' in text

    await until(counts, "the counter counts")


# -- secrets end to end -------------------------------------------------------------------


async def test_secret_reaches_the_component_and_nothing_else(
    lattice_with_controller: SpecStore,
    one_host: HostProcess,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    store = lattice_with_controller
    url = nats_server.url
    value = "s3cr3t-" + os.urandom(6).hex()
    nc = store.nc
    seen: list[bytes] = []

    async def record(msg: object) -> None:
        seen.append(getattr(msg, "data", b""))

    subjects = Subjects()
    sub = await nc.subscribe(f"{subjects.root}.>", cb=record)
    try:
        # The value comes from stdin: never on a command line.
        put = await asyncio.to_thread(
            run_cli, "secret", "put", "greeting", "served_by=@-", "--nats-url", url, stdin=value
        )
        assert put.returncode == 0, put.stderr
        raw = await (await SecretStore(nc, subjects).bucket()).items()
        assert not any(value.encode() in blob for blob in raw.values())  # sealed at rest
        spec = tmp_path / "greet.yaml"
        text = (REPO / "examples" / "specs" / "greeter.yaml").read_text()
        text = text.replace("../../build/", f"{REPO}/build/")
        text = text.replace("served_by: the us zone", "other: x")
        text = text.replace(
            "        config:\n          - name: greeter-settings",
            "        secrets:\n          - name: served_by\n            properties:\n"
            "              policy: lattice\n              key: greeting\n"
            "        config:\n          - name: greeter-settings",
        )
        text = text.replace("requirements:\n                  zone: eu", "requirements: {}")
        text = text.replace("requirements:\n                  zone: us", "requirements: {}")
        text += (
            "  policies:\n    - name: lattice\n      type: policy.secret.wasmcloud.dev/v1alpha1\n"
            "      properties: {backend: nats-kv}\n"
        )
        spec.write_text(text)
        applied = await asyncio.to_thread(run_cli, "apply", "-f", str(spec), "--nats-url", url)
        assert applied.returncode == 0, applied.stderr
        await until(lambda: deployed(store, "greet"), "greet deployed")

        async def greets() -> bool:
            status, body = await fetch(f"{one_host.http_url}/greet?name=Ada")
            return status == 200 and value in body

        await until(greets, "the component reads its secret as config")
        inventory = await asyncio.to_thread(
            run_cli, "get", "inventory", "h1", "--nats-url", url, "-o", "json"
        )
        assert inventory.returncode == 0, inventory.stderr
        listed = await asyncio.to_thread(run_cli, "secret", "list", "--nats-url", url)
        assert "greeting" in listed.stdout and "served_by" in listed.stdout
        for output in (
            inventory.stdout,
            inventory.stderr,
            listed.stdout,
            put.stdout,
            applied.stdout,
        ):
            assert value not in output
    finally:
        await sub.unsubscribe()
    assert seen and not any(value.encode() in data for data in seen)  # events, requests
    assert value not in one_host.log_text()
