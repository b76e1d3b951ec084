"""deploy.manifest: wadm manifests in, normalised AppSpec out, or located problems."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from deploy import errors
from deploy.errors import (
    ManifestError,
    ManifestFileError,
    ManifestReferenceError,
    ManifestSchemaError,
    ManifestSyntaxError,
    Problem,
    UnsupportedFeatureError,
)
from deploy.manifest import (
    check_manifest,
    dump_spec,
    load_manifest,
    load_manifest_file,
    spec_digest,
    spec_from_dump,
)
from deploy.model import AppSpec, CapabilityDecl, ComponentDecl, LinkDecl, Scaler, Spread

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "examples" / "specs"
BUILT = REPO / "build" / "components"
VALID = ("hello.yaml", "counter.yaml", "daemon.yaml", "greeter.yaml", "redis-counter.yaml")
INVALID = sorted((SPECS / "invalid").glob("*.yaml"))

HEAD = """\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: app
  annotations:
    version: v1
spec:
  components:
"""


def comp(text: str) -> str:
    """A ``spec.components`` item written flush left, indented into place."""
    return textwrap.indent(textwrap.dedent(text), "    ")


def wasm(name: str = "hello", image: str = "/c/hello.wasm", traits: str = "") -> str:
    """A component with one replica and more ``traits`` (list items, flush left)."""
    text = f"""\
- name: {name}
  type: component
  properties:
    image: {image}
  traits:
    - type: spreadscaler
      properties:
        instances: 1
"""
    return comp(text + textwrap.indent(textwrap.dedent(traits), "    "))


def cap(name: str, image: str, traits: str = "", props: str = "") -> str:
    """A capability with more ``props`` (flush left) and ``traits`` (list items)."""
    text = f"- name: {name}\n  type: capability\n  properties:\n    image: {image}\n"
    text += textwrap.indent(textwrap.dedent(props), "    ")
    if traits:
        text += "  traits:\n" + textwrap.indent(textwrap.dedent(traits), "    ")
    return comp(text)


def load(*components: str, head: str = HEAD) -> AppSpec:
    return load_manifest(head + "".join(components), "t.yaml")


def fails(*components: str, head: str = HEAD) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load(*components, head=head)
    return info.value


LINK_KV = """\
- type: link
  properties:
    namespace: wasi
    package: keyvalue
    interfaces: [store]
    target: kv
"""


# -- the example specs ----------------------------------------------------------------


def test_every_example_spec_is_covered() -> None:
    assert sorted(p.name for p in SPECS.glob("*.yaml")) == sorted(VALID)
    assert len(INVALID) >= 8


def test_hello_example() -> None:
    spec = load_manifest_file(SPECS / "hello.yaml")
    assert (spec.name, spec.version, spec.description) == ("hello", "v1", "Hello world over HTTP")
    assert spec.components == (
        ComponentDecl("hello", str(BUILT / "hello.wasm"), scaler=Scaler("spread", 2)),
    )
    assert spec.capabilities == (CapabilityDecl("httpserver", "http-server"),)
    assert spec.links == (
        LinkDecl(
            "httpserver",
            "hello",
            "wasmlattice",
            "http",
            ("incoming-handler",),
            source_config=(("path", "/"),),
        ),
    )


def test_redis_counter_example() -> None:
    spec = load_manifest_file(SPECS / "redis-counter.yaml")
    store = spec.capabilities[0]
    assert (store.name, store.provider, store.placed) == ("store", "keyvalue-redis", True)
    assert store.scaler == Scaler("spread", 1, (Spread("eu", (("zone", "eu"),)),))
    assert dict(store.config) == {"redis_url": "redis://127.0.0.1:6379/0", "key_prefix": "tally"}
    assert [(link.source, link.target) for link in spec.links] == [
        ("counter", "store"),
        ("httpserver", "counter"),
    ]


def test_counter_example() -> None:
    spec = load_manifest_file(SPECS / "counter.yaml")
    eu = Spread("eu", (("zone", "eu"),), 2)
    us = Spread("us", (("zone", "us"),), 1)
    assert spec.components == (
        ComponentDecl(
            "counter",
            str(BUILT / "counter.wasm"),
            config=(("counter_key", "hits"),),
            scaler=Scaler("spread", 3, (eu, us)),
        ),
    )
    assert spec.capabilities == (
        CapabilityDecl("kv", "keyvalue"),
        CapabilityDecl("httpserver", "http-server"),
    )
    kv, route = spec.links
    assert kv == LinkDecl(
        "counter",
        "kv",
        "wasi",
        "keyvalue",
        ("store", "atomics"),
        target_config=(("bucket", "counter-app"),),
    )
    assert (route.source, route.target, route.source_config) == (
        "httpserver",
        "counter",
        (("path", "/counter"),),
    )


def test_daemon_example_in_older_wadm_style() -> None:
    spec = load_manifest_file(SPECS / "daemon.yaml")
    (echo,) = spec.components
    assert echo.scaler == Scaler("daemon", 1, (Spread("edge", (("role", "edge"),)),))
    assert spec.capabilities == (CapabilityDecl("httpserver", "http-server"),)
    (route,) = spec.links
    assert (route.target, route.namespace, route.source_config) == (
        "echo",
        "wasi",
        (("path", "/echo"),),
    )


def _expectations(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines()[:3]:
        key, _, value = line.removeprefix("# ").partition(": ")
        found[key] = value
    assert set(found) == {"expect", "expect-line", "expect-error"}, path
    return found


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_example(path: Path) -> None:
    expect = _expectations(path)
    with pytest.raises(ManifestError) as info:
        load_manifest_file(path)
    assert type(info.value).__name__ == expect["expect-error"]
    matching = [p for p in info.value.problems if expect["expect"] in str(p)]
    assert matching, str(info.value)
    assert matching[0].line == int(expect["expect-line"]), str(info.value)
    assert str(matching[0]).startswith(f"{path}:{expect['expect-line']}: ")


def test_dump_is_json_and_round_trips() -> None:
    for name in VALID:
        spec = load_manifest_file(SPECS / name)
        dumped = json.loads(json.dumps(dump_spec(spec)))
        assert spec_from_dump(dumped) == spec


def test_spec_digest() -> None:
    text = (SPECS / "hello.yaml").read_text()
    assert spec_digest(text) == spec_digest(text) != spec_digest(text + "\n")
    assert len(spec_digest(text)) == 64


# -- the error format -----------------------------------------------------------------


def test_problem_format() -> None:
    assert str(Problem("bad", "spec.x", 3, "a.yaml")) == "a.yaml:3: spec.x: bad"
    assert str(Problem("bad", "", None, "a.yaml")) == "a.yaml: bad"
    tree = errors.__doc__ or ""
    for cls in (
        ManifestFileError,
        ManifestSyntaxError,
        ManifestSchemaError,
        ManifestReferenceError,
        UnsupportedFeatureError,
    ):
        assert issubclass(cls, ManifestError) and cls.__name__ in tree


def test_every_problem_is_reported_in_document_order() -> None:
    bad_scale = wasm("a").replace("instances: 1", "instances: -1")
    secret = "secrets: [{name: s, properties: {policy: p, key: k}}]\n"
    error = fails(cap("web", "http-server:1", props=secret), bad_scale)
    # Both are found in one pass; the class is that of the first problem in the text.
    assert isinstance(error, UnsupportedFeatureError)
    assert [p.line for p in error.problems] == [13, 21]
    assert isinstance(fails(wasm("b", image="1.wasm"), bad_scale), ManifestSchemaError)
    error = fails(
        cap("web", "http-server:1", props=secret),
        wasm("a", traits=LINK_KV),
        wasm("a"),
    )
    assert isinstance(error, UnsupportedFeatureError)
    assert len(error.problems) == 3
    lines = [p.line or 0 for p in error.problems]
    assert lines == sorted(lines)
    assert "secrets are not supported" in error.problems[0].message
    assert "link target 'kv'" in error.problems[1].message
    assert "duplicate component name 'a'" in error.problems[2].message


def test_top_level_and_document_errors() -> None:
    for text, kind, message in [
        ("", ManifestSyntaxError, "the manifest is empty"),
        ("a: 1\n---\nb: 2\n", ManifestSyntaxError, "expected a single document"),
        ("just text\n", ManifestSchemaError, "not a string"),
        (HEAD.replace("v1beta1", "v1alpha1"), ManifestSchemaError, "apiVersion: Input should be"),
        (HEAD + "    - !!python/object:os.system x\n", ManifestSyntaxError, "could not determine"),
    ]:
        with pytest.raises(kind) as info:
            load_manifest(text, "t.yaml")
        assert message in str(info.value)
    assert "spec.components: List should have at least 1 item" in str(fails(head=HEAD + "    []\n"))


def test_unreadable_file() -> None:
    with pytest.raises(ManifestFileError, match="cannot read the manifest"):
        load_manifest_file(SPECS / "missing.yaml")


# -- metadata -------------------------------------------------------------------------


def test_version_must_be_a_real_string() -> None:
    head = HEAD.replace("version: v1", "version: 1.10")
    assert 'must be a string: quote it in YAML ("1.1")' in str(fails(wasm(), head=head))
    head = HEAD.replace("version: v1", "version: latest")
    assert "'latest' is not allowed" in str(fails(wasm(), head=head))


def test_names_must_be_lattice_tokens() -> None:
    error = fails(wasm(), head=HEAD.replace("name: app", "name: my.app"))
    assert str(error.problems[0]).startswith("t.yaml:4: metadata.name: 'my.app' is not a lattice")
    error = fails(wasm("hello world"))
    assert "spec.components[0].name: 'hello world' is not a lattice token" in str(error)


def test_ignored_wadm_fields() -> None:
    head = HEAD.replace(
        "    version: v1\n",
        "    version: v1\n    experimental: 'true'\n  labels:\n    team: web\n",
    )
    policies = "  policies:\n    - name: vault\n      type: policy.secret.wasmcloud.dev/v1alpha1\n"
    component = wasm().replace("image: /c/hello.wasm", "image: /c/hello.wasm\n        id: hi")
    spec = load_manifest(head + component + policies, "t.yaml")
    assert spec.annotations == (("experimental", "true"), ("version", "v1"))
    assert spec.components[0].name == "hello"


# -- components -----------------------------------------------------------------------


def test_component_sources(tmp_path: Path) -> None:
    text = HEAD + wasm("a", "rel/a.wasm") + wasm("b", "https://x.test/b.wasm")
    text += wasm("c", "file:///c/c.wasm") + wasm("d", "/abs/d.wasm")
    assert [c.source for c in load_manifest(text).components] == [
        "rel/a.wasm",
        "https://x.test/b.wasm",
        "file:///c/c.wasm",
        "/abs/d.wasm",
    ]
    spec = load_manifest(text, base_dir=tmp_path)
    assert spec.components[0].source == str(tmp_path / "rel" / "a.wasm")
    (tmp_path / "app.yaml").write_text(HEAD + wasm("a", "../x/a.wasm"))
    spec = load_manifest_file(tmp_path / "app.yaml")
    assert spec.components[0].source == str(tmp_path.resolve().parent / "x" / "a.wasm")


def test_oci_references_are_sources_unless_the_path_exists(tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    for image, source in (
        ("oci://ghcr.io/x/y:1.0", "ghcr.io/x/y:1.0"),
        ("ghcr.io/x/y:1.0", "ghcr.io/x/y:1.0"),
        (f"localhost:5000/y@{digest}", f"localhost:5000/y@{digest}"),
        (f"nats-object://{digest}", f"nats-object://{digest}"),
    ):
        spec = load_manifest(HEAD + wasm(image=f"'{image}'"), base_dir=tmp_path)
        assert spec.components[0].source == source
    assert "unsupported URL scheme 's3://'" in str(fails(wasm(image="s3://b/c.wasm")))
    bad_object = fails(wasm(image="nats-object://sha256:abc"))
    assert "unsupported URL scheme 'nats-object://': expected" in str(bad_object)
    (tmp_path / "ghcr.io" / "x").mkdir(parents=True)
    (tmp_path / "ghcr.io" / "x" / "y:1.0").write_bytes(b"\0asm")
    spec = load_manifest(HEAD + wasm(image="ghcr.io/x/y:1.0"), base_dir=tmp_path)
    assert spec.components[0].source == str(tmp_path / "ghcr.io" / "x" / "y:1.0")


def test_component_config_and_extensions() -> None:
    digest = "AB" * 32
    properties = f"""\
        sha256: sha256:{digest}
        max_concurrency: 4
        config:
          - name: first
            properties: {{port: 8080, debug: true, ratio: 1.5, name: x}}
          - name: second
            properties: {{name: y}}
"""
    component = wasm().replace("image: /c/hello.wasm\n", "image: /c/hello.wasm\n" + properties)
    (decl,) = load(component).components
    assert decl.sha256 == digest.lower()
    assert decl.max_concurrency == 4
    assert decl.config == (("debug", "true"), ("name", "y"), ("port", "8080"), ("ratio", "1.5"))


@pytest.mark.parametrize(
    ("properties", "kind", "message"),
    [
        ("sha256: abc", ManifestSchemaError, "properties.sha256: String should match"),
        ("max_concurrency: 0", ManifestSchemaError, "greater than or equal to 1"),
        ("config: [{name: c, properties: {k: null}}]", ManifestSchemaError, "string, number"),
        ("secrets: [{name: s, properties: {policy: p, key: k}}]", ManifestReferenceError, "sec"),
        ("contract: wasmcloud:x", ManifestSchemaError, "properties.contract: unknown field"),
    ],
)
def test_component_property_errors(
    properties: str, kind: type[ManifestError], message: str
) -> None:
    component = wasm().replace(
        "image: /c/hello.wasm\n", f"image: /c/hello.wasm\n        {properties}\n"
    )
    error = fails(component)
    assert isinstance(error, kind)
    assert message in str(error)
    assert error.problems[0].line == 13


def test_missing_image_names_the_field() -> None:
    error = fails(wasm().replace("image: /c/hello.wasm", "id: x"))
    assert (
        str(error.problems[0]) == "t.yaml:11: spec.components[0].properties.image: Field required"
    )


# -- scalers --------------------------------------------------------------------------


def test_replicas_is_accepted_for_instances() -> None:
    (decl,) = load(wasm().replace("instances: 1", "replicas: 3")).components
    assert decl.scaler == Scaler("spread", 3)


@pytest.mark.parametrize(
    ("scale", "message"),
    [
        ("instances: 1\n            replicas: 1", "not both"),
        ("spread: []", "instances is required"),
        ("instances: '2'", "Input should be a valid integer"),
        ("instances: 1\n            spread: [{requirements: {zone: eu}}]", "spread[0].name"),
        ("instances: 1\n            spread: [{name: a, weight: -1}]", "spread[0].weight"),
    ],
)
def test_scaler_errors(scale: str, message: str) -> None:
    error = fails(wasm().replace("instances: 1", scale))
    assert isinstance(error, ManifestSchemaError)
    assert message in str(error)


def test_daemonscaler_ignores_weights_and_capability_scalers_are_ignored() -> None:
    component = (
        wasm()
        .replace("spreadscaler", "daemonscaler")
        .replace("instances: 1", "instances: 1\n            spread: [{name: a, weight: 0}]")
    )
    scaler = "- type: spreadscaler\n  properties:\n    instances: 1\n"
    kv = cap("kv", "ghcr.io/wasmcloud/keyvalue-nats:0.3.1", scaler)
    spec = load(component, kv)
    assert spec.components[0].scaler == Scaler("daemon", 1, (Spread("a", (), 0),))
    assert spec.capabilities == (CapabilityDecl("kv", "keyvalue"),)
    error = fails(component, kv.replace("instances: 1", "instances: x"))
    assert "spec.components[1].traits[0].properties.instances" in str(error)


def test_linkdef_gets_a_hint() -> None:
    text = HEAD + wasm(traits="- type: linkdef\n  properties: {target: x}\n")
    (warning,) = check_manifest(text, "t.yaml").warnings
    assert "unknown trait type 'linkdef'" in str(warning)
    assert "use link" in str(warning)


# -- capabilities ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "provider"),
    [
        ("ghcr.io/wasmcloud/http-server:0.27.0", "http-server"),
        ("wasmcloud.azurecr.io/httpserver:0.19.1", "http-server"),
        ("ghcr.io/wasmcloud/keyvalue-nats:0.3.1", "keyvalue"),
        ("registry.test/kv-memory:1", "keyvalue"),
    ],
)
def test_capability_images_map_to_providers(image: str, provider: str) -> None:
    assert load(wasm(), cap("p", image)).capabilities == (CapabilityDecl("p", provider),)


def test_capability_provider_and_config() -> None:
    extra = """\
config:
  - name: a
    properties: {port: 8000}
  - name: b
    properties: {port: 8001, host: 0.0.0.0}
"""
    spec = load(wasm(), cap("web", "x", props=extra).replace("image: x", "provider: http-server"))
    assert spec.capabilities == (
        CapabilityDecl("web", "http-server", (("host", "0.0.0.0"), ("port", "8001"))),
    )


def test_capability_errors() -> None:
    # An image with no counterpart passes (the controller reports it at deploy time).
    image = "ghcr.io/wasmcloud/messaging-nats:0.23.0"
    unsupported = load(wasm(), cap("q", image)).capabilities
    assert unsupported == (CapabilityDecl("q", "", image=image),)
    conflicting = cap("kv", "keyvalue-nats:0.3.1", props="provider: http-server\n")
    assert "names keyvalue, but provider is http-server" in str(fails(wasm(), conflicting))
    neither = cap("kv", "x").replace("image: x", "config: []")
    assert "give image (or this project's provider" in str(fails(wasm(), neither))
    wrong = cap("kv", "x").replace("image: x", "provider: blobstore")
    assert "properties.provider: Input should be" in str(fails(wasm(), wrong))


REDIS_CONFIG = """\
config:
  - name: redis
    properties: {redis_url: "redis://db:6379/0", key_prefix: shop}
"""
EU_SCALER = """\
- type: spreadscaler
  properties:
    instances: 2
    spread:
      - name: eu
        requirements: {zone: eu}
"""


def redis_cap(props: str = REDIS_CONFIG, traits: str = EU_SCALER) -> str:
    return cap("store", "x", traits, props).replace("image: x", "provider: keyvalue-redis")


def test_a_placed_provider_keeps_its_scaler_and_config() -> None:
    spec = load(wasm(traits=LINK_KV.replace("target: kv", "target: store")), redis_cap())
    (store,) = spec.capabilities
    assert store == CapabilityDecl(
        "store",
        "keyvalue-redis",
        (("key_prefix", "shop"), ("redis_url", "redis://db:6379/0")),
        Scaler("spread", 2, (Spread("eu", (("zone", "eu"),)),)),
    )
    assert store.placed and not CapabilityDecl("kv", "keyvalue").placed
    assert spec_from_dump(json.loads(json.dumps(dump_spec(spec)))) == spec


def test_placed_provider_errors() -> None:
    no_url = redis_cap(props="config: [{name: r, properties: {key_prefix: p}}]\n")
    assert "a keyvalue-redis provider needs config 'redis_url'" in str(fails(wasm(), no_url))
    typo = redis_cap(props="config: [{name: r, properties: {redis_url: x, prefix: p}}]\n")
    message = "unknown config 'prefix' for a keyvalue-redis provider (known: redis_url, key_prefix)"
    assert message in str(fails(wasm(), typo))
    # Without a scaler: accepted, not placed (the app's status says so).
    (unscaled,) = load(wasm(), redis_cap(traits="")).capabilities
    assert unscaled.scaler is None
    two = fails(wasm(), redis_cap(traits=EU_SCALER + EU_SCALER))
    assert "a capability takes one spreadscaler or daemonscaler" in str(two)
    linked_from = fails(wasm(), redis_cap(traits=EU_SCALER + route()))
    assert "links from a keyvalue-redis capability are not supported" in str(linked_from)


# -- links ----------------------------------------------------------------------------


KV = cap("kv", "ghcr.io/wasmcloud/keyvalue-nats:0.3.1")


PATH_A = "source: {config: [{name: r, properties: {path: /a}}]}"


def route(target: str = "hello", source: str = PATH_A) -> str:
    """An http-server link trait (a list item) routing to ``target``."""
    return f"""\
- type: link
  properties:
    namespace: wasi
    package: http
    interfaces: [incoming-handler]
    target: {{name: {target}}}
    {source}
"""


def test_older_and_current_link_forms_are_the_same() -> None:
    older = LINK_KV + "    target_config: [{name: b, properties: {bucket: x}}]\n"
    older += "    source_config: [{name: s, properties: {k: v}}]\n"
    current = LINK_KV.replace(
        "target: kv", "target: {name: kv, config: [{name: b, properties: {bucket: x}}]}"
    )
    current += "    source: {config: [{name: s, properties: {k: v}}]}\n    name: store\n"
    (old,) = load(wasm(traits=older), KV).links
    (new,) = load(wasm(traits=current), KV).links
    assert old == LinkDecl(
        "hello",
        "kv",
        "wasi",
        "keyvalue",
        ("store",),
        target_config=(("bucket", "x"),),
        source_config=(("k", "v"),),
    )
    assert new == LinkDecl(**{**old.__dict__, "name": "store"})


def test_http_route_link() -> None:
    (link,) = load(wasm(), cap("web", "ghcr.io/wasmcloud/http-server:0.27.0", route())).links
    assert (link.source, link.target, link.source_config) == ("web", "hello", (("path", "/a"),))


@pytest.mark.parametrize(
    ("traits", "components", "kind", "message"),
    [
        (LINK_KV.replace("kv", "nope"), (KV,), ManifestReferenceError, "link target 'nope'"),
        (LINK_KV.replace("target: kv", "target: hello"), (KV,), ManifestReferenceError, "itself"),
        (LINK_KV + LINK_KV, (KV,), ManifestReferenceError, "duplicate link"),
        (LINK_KV + "    target_config: [{name: a, properties: {b: c}}]\n", (KV,), None, None),
        (
            LINK_KV.replace("target: kv", "target: {name: kv}")
            + "    target_config: [{name: a, properties: {b: c}}]\n",
            (KV,),
            ManifestSchemaError,
            "target_config goes with a target given as a name",
        ),
        (
            LINK_KV + "    source: {config: []}\n    source_config: []\n",
            (KV,),
            ManifestSchemaError,
            "not both",
        ),
        (
            LINK_KV.replace("interfaces: [store]", "interfaces: []"),
            (KV,),
            ManifestSchemaError,
            "interfaces",
        ),
        (
            LINK_KV.replace(
                "target: kv",
                "target: {name: kv, secrets: [{name: s, properties: {policy: p, key: k}}]}",
            ),
            (KV,),
            UnsupportedFeatureError,
            "secrets",
        ),
    ],
)
def test_link_checks(
    traits: str, components: tuple[str, ...], kind: type[ManifestError] | None, message: str | None
) -> None:
    if kind is None:
        assert load(wasm(traits=traits), *components).links[0].target_config == (("b", "c"),)
        return
    error = fails(wasm(traits=traits), *components)
    assert isinstance(error, kind)
    assert message is not None and message in str(error)


def test_link_source_rules() -> None:
    from_kv = cap("kv", "ghcr.io/wasmcloud/keyvalue-nats:0.3.1", route())
    assert isinstance(fails(wasm(), from_kv), UnsupportedFeatureError)
    to_capability = cap("web", "ghcr.io/wasmcloud/http-server:0.27.0", route("kv"))
    assert "must target a wasm component" in str(fails(wasm(), KV, to_capability))
    relative = route(source="source_config: [{name: r, properties: {path: a}}]")
    assert "must start with '/'" in str(fails(wasm(), cap("web", "httpserver:1", relative)))
    r2 = PATH_A.replace("name: r", "name: r2")
    twice = cap("web", "http-server:1", route() + route(source=r2))
    assert "duplicate link: an HTTP route to 'hello'" in str(fails(wasm(), twice))
    error = fails(
        wasm(), cap("web", "http-server:1", route()), cap("web2", "httpserver:1", route(source=r2))
    )
    assert "(a component takes one), at line 22" in str(error)
    path_b = r2.replace("/a", "/b")
    both = load(
        wasm(), wasm("other"), cap("web", "http-server:1", route() + route("other", path_b))
    )
    assert [link.target for link in both.links] == ["hello", "other"]
    # One route table per host: one path (and Host) leads to one component.
    same_path = cap("web", "http-server:1", route() + route("other", r2))
    error = fails(wasm(), wasm("other"), same_path)
    assert "duplicate HTTP route */a: declared already at line" in str(error)


def test_no_project_imports_in_deploy() -> None:
    for path in (REPO / "deploy").glob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("import ", "from ")):
                module = line.split()[1].split(".")[0]
                assert module not in {"host", "lattice", "providers", "controller"}, path


# -- bounds: a stored spec is read by every controller ----------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: " + "[" * 500 + "]" * 500, "t.yaml:1: the manifest nests deeper than 64 levels"),
        ('{"a": ' * 500 + "1" + "}" * 500, "t.yaml:1: the manifest nests deeper than 64 levels"),
        (
            "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 500)),
            "t.yaml:64: the manifest nests deeper than 64 levels",
        ),
        ("a: &a [*a]\n", "t.yaml:1: a recursive alias (a value containing itself) is not"),
        ("x: " + "y" * 300_000, "t.yaml: the manifest is 300003 bytes: at most 262144"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, n in zip("abcde", "bcdef", strict=True)
            ),
            "t.yaml: the manifest holds more than 100000 values (aliases expanded)",
        ),
    ],
)
def test_a_manifest_beyond_the_bounds_is_a_syntax_error(text: str, message: str) -> None:
    with pytest.raises(ManifestSyntaxError) as info:
        load_manifest(text, "t.yaml")
    assert str(info.value).startswith(message)


def test_within_the_bounds_aliases_still_work() -> None:
    spec = load(wasm(image="&img /c/hello.wasm"), wasm("other", image="*img"))
    assert [c.source for c in spec.components] == ["/c/hello.wasm", "/c/hello.wasm"]
