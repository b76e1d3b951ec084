"""From a scale request and links to the runtime's spec and HTTP routes (a pure function)."""

from __future__ import annotations

import pytest

from host.component_request import DEFAULT_MAX_CONCURRENCY, plan_component
from host.errors import MissingConfig
from host.runtime.components import LinkSpec
from host.runtime.pool import Limits
from lattice.messages import Link, ScaleComponent
from lattice.subjects import Subjects
from providers.http_server import Route

RESERVED = Subjects().owns_bucket


def request(**fields: object) -> ScaleComponent:
    return ScaleComponent.model_validate({"component_id": "app", "source": "app.wasm", **fields})


def http_link(target: str, **config: str) -> Link:
    return Link(
        source_id="http-server",
        target=target,
        namespace="wasmlattice",
        package="http",
        interfaces=["incoming-handler"],
        name=target,
        config=config,
    )


@pytest.mark.parametrize(
    ("count", "max_concurrency", "instances"),
    [
        (1, None, DEFAULT_MAX_CONCURRENCY),  # the default
        (1, 2, 2),  # as asked
        (6, 2, 6),  # never fewer than the replicas
        (3, 8, 8),
    ],
)
def test_limits_allow_at_least_the_replicas(
    count: int, max_concurrency: int | None, instances: int
) -> None:
    asked = request(count=count, max_concurrency=max_concurrency, deadline_s=2.5, memory_mb=64)
    plan = plan_component(asked, [], [], {}, reserved=RESERVED)
    assert plan.spec.limits == Limits(
        max_concurrency=instances, deadline_s=2.5, memory_bytes=64 * 2**20
    )
    assert plan.spec.replicas == count
    assert (plan.spec.component_id, plan.spec.source) == ("app", "app.wasm")


def test_config_layers_named_configs_in_order_then_the_request() -> None:
    named = {
        "base": {"greeting": "hello", "colour": "red", "size": "s"},
        "site": {"colour": "blue", "size": "m"},
        "unused": {"greeting": "ignored"},
    }
    asked = request(config_names=["base", "site"], config={"size": "l"})
    plan = plan_component(asked, [], [], named, reserved=RESERVED)
    assert dict(plan.spec.config) == {"greeting": "hello", "colour": "blue", "size": "l"}


def test_a_missing_named_config_is_a_clear_error() -> None:
    asked = request(config_names=["base", "nope"])
    with pytest.raises(MissingConfig, match="'app' uses named config 'nope', which does not exist"):
        plan_component(asked, [], [], {"base": {}}, reserved=RESERVED)


def test_routes_come_from_http_server_links_to_the_component() -> None:
    links_in = [
        http_link("app", path="/api"),
        http_link("app", path="/v2", host="example.com"),
        http_link("app"),  # no path: the root
        http_link("app", path="/x", host=""),  # empty host: any host
        # A component calling this one is no route.
        Link(source_id="front", target="app", namespace="demo", package="greet", interfaces=["g"]),
    ]
    plan = plan_component(request(), [], links_in, {}, reserved=RESERVED)
    assert plan.routes == (
        Route("app", "/api", None),
        Route("app", "/v2", "example.com"),
        Route("app", "/", None),
        Route("app", "/x", None),
    )


def test_provider_links_bind_providers_and_component_links_name_targets() -> None:
    links = [
        Link(source_id="app", target="keyvalue", interfaces=["store"], config={"bucket": "b"}),
        Link(source_id="app", target="logging", namespace="wasi", package="logging"),
        Link(
            source_id="app",
            target="greeter",
            namespace="demo",
            package="greet",
            interfaces=["greeter", "admin"],
            name="g",
        ),
        Link(source_id="app", target="clock", namespace="demo", package="time", interfaces=["t"]),
    ]
    plan = plan_component(request(), links, [], {}, reserved=RESERVED)
    assert plan.spec.links == (
        LinkSpec("keyvalue", {"bucket": "b"}),
        LinkSpec("logging", {}),
    )
    assert plan.spec.component_links == (
        ("demo:greet/admin", "greeter"),
        ("demo:greet/greeter", "greeter"),
        ("demo:time/t", "clock"),
    )
    assert plan.remote_providers == ()


def test_a_keyvalue_link_to_a_provider_process_uses_its_remote_backend() -> None:
    links = [
        Link(source_id="app", target="keyvalue", config={"bucket": "b", "provider": "redis-1"}),
    ]
    plan = plan_component(request(), links, [], {}, reserved=RESERVED)
    assert plan.spec.links == (
        LinkSpec("keyvalue", {"bucket": "b", "provider": "redis-1", "backend": "provider:redis-1"}),
    )
    assert plan.remote_providers == ("redis-1",)


def test_a_bad_provider_id_is_refused() -> None:
    links = [Link(source_id="app", target="keyvalue", config={"provider": "a.b"})]
    with pytest.raises(ValueError, match=r"invalid provider id 'a\.b'"):
        plan_component(request(), links, [], {}, reserved=RESERVED)


@pytest.mark.parametrize(
    "config",
    [
        {"bucket": "wasmlattice-default-specs"},
        {"bucket": "mine", "bucket.cache": "wasmlattice-default-links"},
        {"bucket": "wasmlattice-other-lease", "provider": "redis-1"},
    ],
)
def test_a_keyvalue_link_naming_a_lattice_bucket_is_refused(config: dict[str, str]) -> None:
    links = [Link(source_id="app", target="keyvalue", config=config)]
    with pytest.raises(ValueError, match="names a reserved bucket"):
        plan_component(request(), links, [], {}, reserved=RESERVED)
    custom = Subjects(prefix="acme").owns_bucket
    assert custom("acme-default-config") and not custom("wasmlattice-default-config")
