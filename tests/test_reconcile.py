"""reconcile() is pure: exact command lists for given desired and observed states."""

from __future__ import annotations

from controller.commands import DeleteLinkCommand, PutLinkCommand, ScaleCommand
from controller.model import HostView, LinkView, Observed, Pending, Replicas
from controller.placement import split_by_weight
from controller.reconcile import reconcile, revision
from deploy.model import AppSpec, CapabilityDecl, ComponentDecl, LinkDecl, Scaler, Spread

NOW = 1000.0
TIMEOUT = 3.0
EU, US = Spread("eu", (("zone", "eu"),), 2), Spread("us", (("zone", "us"),), 1)


def app(
    instances: int = 3,
    spreads: tuple[Spread, ...] = (EU, US),
    kind: str = "spread",
    source: str = "/c.wasm",
) -> AppSpec:
    return AppSpec(
        name="shop",
        version="v1",
        components=(ComponentDecl("checkout", source, scaler=Scaler(kind, instances, spreads)),),
    )


REV = revision(app(), app().components[0])


def host(
    host_id: str,
    zone: str,
    running: int = 0,
    *,
    seen: float = NOW,
    draining: bool = False,
    rev: str = REV,
) -> HostView:
    components = {"shop--checkout": Replicas(running, rev, "shop")} if running else {}
    return HostView(host_id, {"zone": zone}, seen, draining, components)


def scale(host_id: str, count: int, source: str = "/c.wasm", rev: str = REV) -> ScaleCommand:
    return ScaleCommand(host_id, "shop--checkout", count, source, rev, "shop", "v1")


def hosts(*views: HostView) -> Observed:
    return Observed(hosts={h.host_id: h for h in views})


def test_split_by_weight_is_largest_remainder() -> None:
    assert split_by_weight(3, [2, 1]) == [2, 1]
    assert split_by_weight(10, [1, 1, 1]) == [4, 3, 3]
    assert split_by_weight(5, [0, 0]) == [0, 0]


def test_spread_over_zones_by_weight() -> None:
    plan = reconcile(
        [app()], hosts(host("a", "eu"), host("b", "eu"), host("c", "us")), {}, NOW, TIMEOUT
    )
    assert plan.commands == (scale("a", 1), scale("b", 1), scale("c", 1))
    assert plan.status["shop"].state == "reconciling"


def test_nothing_to_do_when_observed_matches() -> None:
    observed = hosts(host("a", "eu", 1), host("b", "eu", 1), host("c", "us", 1))
    plan = reconcile([app()], observed, {}, NOW, TIMEOUT)
    assert plan.commands == ()
    assert plan.status["shop"].state == "deployed"
    assert plan.status["shop"].components[0].hosts == {"a": 1, "b": 1, "c": 1}


def test_no_matching_host_is_a_failed_status_with_reason() -> None:
    plan = reconcile([app()], hosts(host("a", "eu")), {}, NOW, TIMEOUT)
    assert plan.commands == (scale("a", 2),)
    assert plan.status["shop"].state == "failed"
    assert "no host matches zone=us" in plan.status["shop"].reasons[0]


def test_dead_host_replicas_move_to_survivors() -> None:
    observed = hosts(host("a", "eu", 1), host("b", "eu", 1, seen=NOW - 10), host("c", "us", 1))
    plan = reconcile([app()], observed, {}, NOW, TIMEOUT)
    assert plan.commands == (scale("a", 2),)


def test_in_flight_commands_are_not_reissued_until_they_expire() -> None:
    observed = hosts(host("a", "eu"), host("c", "us"))
    pending = {
        ("scale", "a", "shop--checkout"): Pending(2, REV, NOW + 5),
        ("scale", "c", "shop--checkout"): Pending(1, REV, NOW - 1),
    }
    plan = reconcile([app()], observed, pending, NOW, TIMEOUT)
    assert plan.commands == (scale("c", 1),)


def test_drain_keeps_replicas_until_replacements_run() -> None:
    draining = host("a", "eu", 2, draining=True)
    plan = reconcile(
        [app()], hosts(draining, host("b", "eu"), host("c", "us", 1)), {}, NOW, TIMEOUT
    )
    assert plan.commands == (scale("b", 2),)  # a keeps its 2 for now
    plan = reconcile(
        [app()], hosts(draining, host("b", "eu", 2), host("c", "us", 1)), {}, NOW, TIMEOUT
    )
    assert plan.commands == (scale("a", 0),)


def test_source_change_rolls_every_replica_in_place() -> None:
    new = app(source="/c-v2.wasm")
    new_rev = revision(new, new.components[0])
    observed = hosts(host("a", "eu", 2), host("c", "us", 1))
    plan = reconcile([new], observed, {}, NOW, TIMEOUT)
    assert plan.commands == (
        scale("a", 2, "/c-v2.wasm", new_rev),
        scale("c", 1, "/c-v2.wasm", new_rev),
    )


def test_daemon_scaler_runs_on_every_matching_host() -> None:
    daemon = app(instances=2, spreads=(Spread("eu", (("zone", "eu"),)),), kind="daemon")
    plan = reconcile(
        [daemon], hosts(host("a", "eu"), host("b", "eu"), host("c", "us")), {}, NOW, TIMEOUT
    )
    assert plan.commands == (scale("a", 2), scale("b", 2))


def test_links_are_put_first_and_orphans_removed() -> None:
    spec = AppSpec(
        name="shop",
        version="v1",
        components=(ComponentDecl("checkout", "/c.wasm", scaler=Scaler("spread", 1)),),
        capabilities=(CapabilityDecl("kv", "keyvalue"), CapabilityDecl("web", "http-server")),
        links=(
            LinkDecl(
                "checkout",
                "kv",
                "wasi",
                "keyvalue",
                ("store",),
                target_config=(("bucket", "orders"),),
            ),
            LinkDecl(
                "web",
                "checkout",
                "wasi",
                "http",
                ("incoming-handler",),
                source_config=(("path", "/shop"),),
            ),
        ),
    )
    stale = LinkView("old/wasi:keyvalue/default", "keyvalue", (), (), "gone-app")
    observed = Observed(hosts={"a": host("a", "eu")}, links={stale.key: stale})
    plan = reconcile([spec], observed, {}, NOW, TIMEOUT)
    rev = revision(spec, spec.components[0])
    assert plan.commands == (
        PutLinkCommand(
            "shop--checkout",
            "keyvalue",
            "wasi",
            "keyvalue",
            ("store",),
            "default",
            (("bucket", "orders"),),
            "shop",
        ),
        PutLinkCommand(
            "http-server",
            "shop--checkout",
            "wasi",
            "http",
            ("incoming-handler",),
            "shop--checkout",
            (("path", "/shop"),),
            "shop",
        ),
        ScaleCommand("a", "shop--checkout", 1, "/c.wasm", rev, "shop", "v1"),
        DeleteLinkCommand("old/wasi:keyvalue/default"),
    )


def test_undeployed_app_replicas_are_stopped() -> None:
    plan = reconcile([], hosts(host("a", "eu", 2)), {}, NOW, TIMEOUT)
    assert plan.commands == (ScaleCommand("a", "shop--checkout", 0, "", "", "shop", ""),)


def test_thousand_apps_over_hundred_hosts_is_deterministic() -> None:
    views = [host(f"h{i:03}", "eu" if i % 2 else "us") for i in range(100)]
    apps = [
        AppSpec(
            name=f"app{n}",
            version="v1",
            components=(ComponentDecl("c", "/c.wasm", scaler=Scaler("spread", 3, (EU, US))),),
        )
        for n in range(1000)
    ]
    first = reconcile(apps, hosts(*views), {}, NOW, TIMEOUT)
    second = reconcile(apps, hosts(*views), {}, NOW, TIMEOUT)
    assert first == second
    assert len(first.commands) == 3000
    # Load spreads out evenly within each zone: eu takes 2000 replicas over 50 hosts,
    # us 1000 over 50.
    per_host: dict[str, int] = {}
    for command in first.commands:
        assert isinstance(command, ScaleCommand)
        per_host[command.host_id] = per_host.get(command.host_id, 0) + command.count
    assert {per_host[f"h{i:03}"] for i in range(1, 100, 2)} == {40}
    assert {per_host[f"h{i:03}"] for i in range(0, 100, 2)} == {20}
