"""Names that cannot collide across apps: ids, routes, buckets, versions (pure parts)."""

from __future__ import annotations

import pytest

from controller.admission import lattice_problems, route_conflicts
from controller.commands import PutLinkCommand, ScaleCommand
from controller.model import HostView, LinkView, Observed
from controller.reconcile import reconcile
from deploy.errors import ManifestSchemaError
from deploy.manifest import load_manifest
from deploy.model import AppSpec, CapabilityDecl, ComponentDecl, LinkDecl, Scaler
from deploy.names import (
    RouteKey,
    app_of,
    name_problem,
    route_key,
    scoped_id,
    version_problem,
)
from lattice.subjects import Subjects, check_token

NOW = 1000.0


def web_app(name: str, component: str, path: str = "/", host: str = "") -> AppSpec:
    """``name`` running ``component`` on every host, routed from ``path`` (and ``host``)."""
    config = (("path", path),) + ((("host", host),) if host else ())
    return AppSpec(
        name=name,
        version="v1",
        components=(ComponentDecl(component, "/c.wasm", scaler=Scaler("daemon", 1)),),
        capabilities=(CapabilityDecl("http", "http-server"),),
        links=(
            LinkDecl(
                "http", component, "wasi", "http", ("incoming-handler",), source_config=config
            ),
        ),
    )


def observed_host() -> Observed:
    return Observed(hosts={"a": HostView("a", {}, NOW)})


def test_wadm_names_are_accepted_and_ambiguous_ones_refused() -> None:
    for good in ("http-component", "kvcounter", "rust-hello-world", "a", "web2", "x" * 63):
        assert name_problem(good) is None, good
    for bad in ("col--x", "-web", "web-", "Web", "my_app", "my.app", "", "x" * 64, "a b"):
        assert name_problem(bad) is not None, bad


def test_the_colliding_pair_gets_distinct_ids() -> None:
    # Before: "col" + "x-web" and "col-x" + "web" were both "col-x-web".
    first, second = scoped_id("col", "x-web"), scoped_id("col-x", "web")
    assert (first, second) == ("col--x-web", "col-x--web")
    assert (app_of(first), app_of(second)) == ("col", "col-x")
    assert app_of("made-by-hand") is None
    check_token("component id", first)
    plan = reconcile(
        [web_app("col", "x-web", "/a"), web_app("col-x", "web", "/b")],
        observed_host(),
        {},
        NOW,
        3.0,
    )
    scaled = {c.component_id: c.app for c in plan.commands if isinstance(c, ScaleCommand)}
    assert scaled == {"col--x-web": "col", "col-x--web": "col-x"}
    routes = {c.link_key for c in plan.commands if isinstance(c, PutLinkCommand)}
    assert len(routes) == 2


def test_versions_cannot_alias_keys() -> None:
    for good in ("v1", "v0.0.1", "1.10", "1.0.0-rc.1", "2024.01.02", "v1+build.7"):
        assert version_problem(good) is None, good
    for bad in ("1.index", "v1.status", "a.v.b", "latest", "1..2", ".1", "1.", "v 1", "x" * 65):
        assert version_problem(bad) is not None, bad


def test_a_manifest_with_an_aliasing_version_or_name_is_refused() -> None:
    text = """\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: shop
  annotations:
    version: "1.index"
spec:
  components:
    - name: web
      type: component
      properties: {image: /c.wasm}
      traits: [{type: daemonscaler, properties: {instances: 1}}]
"""
    with pytest.raises(ManifestSchemaError, match=r"invalid version '1\.index'"):
        load_manifest(text)
    with pytest.raises(ManifestSchemaError, match="'col--x' is not a lattice token"):
        load_manifest(text.replace('"1.index"', "v1").replace("name: shop", "name: col--x"))
    with pytest.raises(ManifestSchemaError, match="cannot be part of a link key"):
        load_manifest(
            text.replace('"1.index"', "v1").replace(
                "traits: [",
                "traits: [{type: link, properties: {namespace: 'a/b', package: p, "
                "interfaces: [i], target: web}}, ",
            )
        )


def test_route_keys_are_what_the_route_table_treats_as_one() -> None:
    assert route_key({"path": "/a/"}) == route_key({"path": "/a"}) == RouteKey("", "/a")
    assert route_key({}) == route_key({"path": ""}) == RouteKey("", "/")
    assert route_key({"path": "/", "host": "Shop.Example"}) == RouteKey("shop.example", "/")
    assert str(RouteKey("", "/a")) == "*/a"


def test_a_route_held_by_another_app_is_a_conflict_naming_the_owner() -> None:
    owner, thief = web_app("zzz-owner", "web"), web_app("aaa-thief", "web")
    held = LinkView(
        "http-server/wasi:http/zzz-owner--web",
        "zzz-owner--web",
        ("incoming-handler",),
        (("path", "/"),),
        "zzz-owner",
        "http-server",
    )
    observed = Observed(hosts=observed_host().hosts, links={held.key: held})
    plan = reconcile([thief, owner], observed, {}, NOW, 3.0)
    put = [c for c in plan.commands if isinstance(c, PutLinkCommand)]
    assert put == []  # the owner's link is in place; the thief gets none
    status = plan.status["aaa-thief"]
    assert status.state == "failed"
    assert status.reasons == (
        "web: HTTP route */ is owned by app 'zzz-owner' (choose another path or host)",
    )
    assert plan.status["zzz-owner"].reasons == ()
    # Nobody holds it yet: the first claimant by name owns it, whatever the list order.
    for apps in ([thief, owner], [owner, thief]):
        plan = reconcile(apps, observed_host(), {}, NOW, 3.0)
        (link,) = [c for c in plan.commands if isinstance(c, PutLinkCommand)]
        assert link.app == "aaa-thief"
        assert "owned by app 'aaa-thief'" in plan.status["zzz-owner"].reasons[0]


def test_other_paths_and_hosts_are_not_conflicts() -> None:
    apps = [web_app("a", "web", "/"), web_app("b", "web", "/b"), web_app("c", "web", "/", "c.io")]
    plan = reconcile(apps, observed_host(), {}, NOW, 3.0)
    assert all(not s.reasons for s in plan.status.values())
    assert len([c for c in plan.commands if isinstance(c, PutLinkCommand)]) == 3
    assert route_conflicts(apps[0], apps[1:]) == []
    (conflict,) = route_conflicts(web_app("d", "other", "/b/"), apps)
    assert (
        conflict == "HTTP route */b (to 'other') is owned by app 'b': choose another path or host"
    )


def kv_app(**config: str) -> AppSpec:
    return AppSpec(
        name="kv",
        version="v1",
        components=(ComponentDecl("counter", "/c.wasm", scaler=Scaler("daemon", 1)),),
        capabilities=(CapabilityDecl("store", "keyvalue"),),
        links=(
            LinkDecl(
                "counter",
                "store",
                "wasi",
                "keyvalue",
                ("store",),
                target_config=tuple(sorted(config.items())),
            ),
        ),
    )


def test_the_lattices_own_buckets_are_reserved() -> None:
    subjects = Subjects()
    for bucket in (
        subjects.specs_bucket,
        subjects.links_bucket,
        subjects.config_bucket,
        subjects.lease_bucket,
        Subjects(lattice="other").specs_bucket,
    ):
        assert subjects.owns_bucket(bucket), bucket
        (problem,) = lattice_problems(kv_app(bucket=bucket), subjects)
        assert f"bucket '{bucket}' is reserved" in problem
        assert lattice_problems(kv_app(**{"bucket": "mine", "bucket.x": bucket}), subjects)
    assert lattice_problems(kv_app(bucket="counter-app"), subjects) == []
    assert not subjects.owns_bucket("wasmlattice")
