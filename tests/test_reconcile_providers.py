"""reconcile() places out-of-process providers: exact commands for given states."""

from __future__ import annotations

from controller.commands import ProviderCommand, PutLinkCommand
from controller.model import HostView, Observed, Pending, ProviderReplica
from controller.reconcile import provider_revision, reconcile
from deploy.model import AppSpec, CapabilityDecl, ComponentDecl, LinkDecl, Scaler, Spread

NOW = 1000.0
TIMEOUT = 3.0
EU = Spread("eu", (("zone", "eu"),), 100)
CONFIG = (("redis_url", "redis://db:6379"),)


def app(instances: int = 1, config: tuple[tuple[str, str], ...] = CONFIG) -> AppSpec:
    store = CapabilityDecl("store", "keyvalue-redis", config, Scaler("spread", instances, (EU,)))
    link = LinkDecl(
        "counter", "store", "wasi", "keyvalue", ("store", "atomics"), target_config=(("b", "x"),)
    )
    counter = ComponentDecl("counter", "/c.wasm", scaler=Scaler("spread", 1, (EU,)))
    return AppSpec("shop", "v1", components=(counter,), capabilities=(store,), links=(link,))


REV = provider_revision(app().capabilities[0])


def host(
    host_id: str,
    zone: str = "eu",
    *,
    provider: bool = False,
    healthy: bool = True,
    rev: str = REV,
    app_name: str = "shop",
    seen: float = NOW,
    draining: bool = False,
) -> HostView:
    providers = {"shop--store": ProviderReplica(rev, app_name, healthy)} if provider else {}
    return HostView(host_id, {"zone": zone}, seen, draining, {}, providers)


def run(
    host_id: str,
    *,
    config: tuple[tuple[str, str], ...] = CONFIG,
    rev: str = REV,
) -> ProviderCommand:
    return ProviderCommand(host_id, "shop--store", True, "keyvalue-redis", config, rev, "shop")


def stop(host_id: str, app_name: str = "shop") -> ProviderCommand:
    return ProviderCommand(host_id, "shop--store", False, app=app_name)


def providers(plan_commands: tuple[object, ...]) -> list[object]:
    return [c for c in plan_commands if isinstance(c, ProviderCommand)]


def hosts(*views: HostView) -> Observed:
    return Observed(hosts={h.host_id: h for h in views})


def test_a_provider_is_placed_on_a_matching_host_and_links_lead_to_it() -> None:
    plan = reconcile([app()], hosts(host("a"), host("b", "us")), {}, NOW, TIMEOUT)
    assert providers(plan.commands) == [run("a")]
    (link,) = [c for c in plan.commands if isinstance(c, PutLinkCommand)]
    # The component's link goes to the keyvalue contract, served by provider shop-store.
    assert (link.source_id, link.target) == ("shop--counter", "keyvalue")
    assert dict(link.config) == {"b": "x", "provider": "shop--store"}
    # Links, then providers, then component replicas.
    kinds = [type(c).__name__ for c in plan.commands]
    assert kinds == ["PutLinkCommand", "ProviderCommand", "ScaleCommand"]
    status = {c.component: c for c in plan.status["shop"].components}
    assert (status["store"].desired, status["store"].running) == (1, 0)


def test_a_healthy_provider_is_left_alone_and_counts_as_running() -> None:
    plan = reconcile([app()], hosts(host("a", provider=True), host("b")), {}, NOW, TIMEOUT)
    assert providers(plan.commands) == []
    status = {c.component: c for c in plan.status["shop"].components}
    assert (status["store"].running, status["store"].hosts) == (1, {"a": 1})


def test_at_most_one_per_host_with_a_reason_for_the_rest() -> None:
    plan = reconcile([app(instances=3)], hosts(host("a"), host("b")), {}, NOW, TIMEOUT)
    assert providers(plan.commands) == [run("a"), run("b")]
    assert plan.status["shop"].state == "failed"
    assert any("runs once per host and 2 hosts match" in r for r in plan.status["shop"].reasons)


def test_a_dead_hosts_provider_moves_to_a_survivor() -> None:
    observed = hosts(host("a", provider=True, seen=NOW - 10), host("b"))
    plan = reconcile([app()], observed, {}, NOW, TIMEOUT)
    assert providers(plan.commands) == [run("b")]


def test_an_in_flight_start_is_not_reissued() -> None:
    pending = {("provider", "a", "shop--store"): Pending(1, REV, NOW + 5)}
    plan = reconcile([app()], hosts(host("a"), host("b")), pending, NOW, TIMEOUT)
    assert providers(plan.commands) == []


def test_drain_keeps_the_provider_until_a_replacement_is_healthy() -> None:
    draining = host("a", provider=True, draining=True)
    plan = reconcile([app()], hosts(draining, host("b")), {}, NOW, TIMEOUT)
    assert providers(plan.commands) == [run("b")]
    starting = hosts(draining, host("b", provider=True, healthy=False))
    assert providers(reconcile([app()], starting, {}, NOW, TIMEOUT).commands) == []
    ready = hosts(draining, host("b", provider=True))
    assert providers(reconcile([app()], ready, {}, NOW, TIMEOUT).commands) == [stop("a")]


def test_a_config_change_replaces_the_provider_in_place() -> None:
    changed = app(config=(("redis_url", "redis://other:6379"),))
    new_rev = provider_revision(changed.capabilities[0])
    plan = reconcile([changed], hosts(host("a", provider=True)), {}, NOW, TIMEOUT)
    assert providers(plan.commands) == [
        run("a", config=(("redis_url", "redis://other:6379"),), rev=new_rev)
    ]


def test_an_undeployed_apps_provider_is_stopped_but_not_a_hand_started_one() -> None:
    observed = hosts(host("a", provider=True), host("b", provider=True, app_name=""))
    plan = reconcile([], observed, {}, NOW, TIMEOUT)
    assert providers(plan.commands) == [stop("a")]
