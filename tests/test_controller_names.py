"""Apps cannot take each other's names, and no stored spec can stop the controller.

On a real nats-server (with real hosts where placement is asserted): specs written
straight into the specs bucket, as an attacker with write access to it could, and
`lattice apply` refusing what the controller would refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from controller.service import Controller
from controller.spec_loader import SpecLoader
from deploy import locate
from lattice.client import LatticeClient
from lattice.connection import Connection, NatsOptions, connect
from lattice.kv import open_bucket
from lattice.messages import Link
from lattice.natsd import NatsServer
from lattice.specs import SpecError, SpecStore
from tests.lattice_procs import LATTICE, HostProcess
from tests.test_controller import (
    HOST_TIMEOUT_S,
    Lattice,
    hosts,
    lattice,
    manifest,
    status_of,
    wait_until,
)

__all__ = ["hosts", "lattice"]  # fixtures: imported to be found by pytest

# 500 levels: PyYAML's recursive composer overflows the stack long before that.
DEEP = "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata: " + (
    '{"a": ' * 500 + "1" + "}" * 500
)


def kv_manifest(name: str, bucket: str) -> str:
    return f"""\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: v1
spec:
  components:
    - name: counter
      type: component
      properties:
        image: /c.wasm
      traits:
        - type: daemonscaler
          properties:
            instances: 1
        - type: link
          properties:
            namespace: wasi
            package: keyvalue
            interfaces: [store]
            target:
              name: store
              config:
                - name: b
                  properties:
                    bucket: {bucket}
    - name: store
      type: capability
      properties:
        provider: keyvalue
"""


@contextlib.asynccontextmanager
async def running(nc: Connection, **options: float) -> AsyncIterator[Controller]:
    controller = Controller(nc, **options)  # type: ignore[arg-type]
    await controller.start()
    task = asyncio.create_task(controller.run(), name=controller.controller_id)
    try:
        yield controller
    finally:
        controller.request_stop()
        await task


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Connection]:
    conn = await connect(NatsOptions(nats_server.url))
    try:
        yield conn
    finally:
        await conn.close()


async def reasons_of(specs: SpecStore, app: str) -> list[str]:
    record = await specs.get_status(app)
    return list(record.reasons) if record else []


def cli(nats_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LATTICE, *args, "--nats-url", nats_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_spec_keys_cannot_alias_and_a_bad_index_hides_no_app(
    nats_server: NatsServer, nc: Connection, tmp_path: Path
) -> None:
    specs = SpecStore(nc, LatticeClient(nc).subjects)
    await specs.put("shop", "v0.0.1", manifest("shop", "v0.0.1", Path("/c.wasm")))
    with pytest.raises(SpecError, match=r"invalid version '1\.index'"):
        await specs.put("shop", "1.index", "text")
    with pytest.raises(SpecError, match="'col--x' is not a lattice token"):
        await specs.put("col--x", "v1", "text")
    # Written past the store's checks: a version key ending in .index, a garbage index.
    bucket = await open_bucket(nc, specs.subjects.specs_bucket)
    await bucket.put("shop.v.1.index", b"apiVersion: x\n")
    await bucket.put("junk.index", b"\xc1 not msgpack")
    listed = {index.name: index for index in await specs.apps()}
    assert sorted(listed) == ["junk", "shop"]
    assert listed["shop"].problem is None and listed["shop"].latest == "v0.0.1"
    assert "its stored index is unreadable" in str(listed["junk"].problem)
    shown = cli(nats_server.url, "get", "apps", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert [a["app"]["name"] for a in json.loads(shown.stdout)] == ["junk", "shop"]
    await specs.delete("junk")
    assert [index.name for index in await specs.apps()] == ["shop"]


async def test_apply_refuses_a_taken_route_and_a_reserved_bucket(
    nats_server: NatsServer, nc: Connection, tmp_path: Path, components: dict[str, Path]
) -> None:
    # apply uploads each component (lattice.artifacts): it must be a real one.
    wasm = components["hello-wat"]
    def apply(name: str, text: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        return cli(nats_url, "apply", "-f", str(path))

    nats_url = nats_server.url
    assert apply("owner", manifest("owner", "v1", wasm, path="/")).returncode == 0
    taken = apply("thief", manifest("thief", "v1", wasm, path="/"))
    assert taken.returncode != 0
    assert "HTTP route */ (to 'web') is owned by app 'owner'" in taken.stderr
    # The owner itself may roll a new version on its route; another path is free.
    assert apply("owner2", manifest("owner", "v2", wasm, path="/")).returncode == 0
    assert apply("other", manifest("thief", "v1", wasm, path="/t")).returncode == 0
    specs_bucket = LatticeClient(nc).subjects.specs_bucket
    reserved = apply("kv", kv_manifest("kv", specs_bucket))
    assert reserved.returncode != 0
    assert f"bucket '{specs_bucket}' is reserved" in reserved.stderr
    names = [index.name for index in await SpecStore(nc, LatticeClient(nc).subjects).apps()]
    assert names == ["owner", "thief"]


async def test_the_controller_refuses_what_was_written_past_apply(nc: Connection) -> None:
    specs = SpecStore(nc, LatticeClient(nc).subjects)

    async def put(name: str, text: str) -> None:
        await specs.put(name, "v1", text)
        await specs.deploy(name, "v1")

    async with running(nc, tick_s=0.2):
        await put("owner", manifest("owner", "v1", Path("/c.wasm")))
        await wait_until(lambda: _has_status(specs, "owner"), what="owner's status")
        await put("thief", manifest("thief", "v1", Path("/c.wasm")))
        await put("kv", kv_manifest("kv", specs.subjects.links_bucket))
        await put("impostor", manifest("owner", "v9", Path("/c.wasm")))

        async def refused() -> bool:
            return await status_of_store(specs, "kv") == "invalid" and bool(
                await reasons_of(specs, "thief")
            )

        await wait_until(refused, what="both refused")
        assert "web: HTTP route */ is owned by app 'owner' (choose another path or host)" in (
            await reasons_of(specs, "thief")
        )
        (reason,) = await reasons_of(specs, "kv")
        assert f"bucket '{specs.subjects.links_bucket}' is reserved" in reason
        await wait_until(lambda: _is_invalid(specs, "impostor"), what="impostor invalid")
        (reason,) = await reasons_of(specs, "impostor")
        assert "stored as impostor v1, but its text is owner v9" in reason
        assert not any("owned by" in r for r in await reasons_of(specs, "owner"))


async def _has_status(specs: SpecStore, app: str) -> bool:
    return await specs.get_status(app) is not None


async def status_of_store(specs: SpecStore, app: str) -> str:
    record = await specs.get_status(app)
    return record.state if record else "none"


async def _is_invalid(specs: SpecStore, app: str) -> bool:
    return await status_of_store(specs, app) == "invalid"


async def test_any_unusable_spec_fails_its_own_app_only(
    nc: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = SpecStore(nc, LatticeClient(nc).subjects)
    good = manifest("good", "v1", Path("/c.wasm"))
    bad = {
        "deep": (DEEP, "the manifest nests deeper than 64 levels"),
        "huge": (good + "#" * 300_000, "the manifest is 30"),
        "yaml": ("a: [", "YAML syntax error"),
        "schema": (good.replace("kind: Application", "kind: Pod"), "kind: Input should be"),
        "binary": ("replaced below", "its spec cannot be read: UnicodeDecodeError"),
    }
    for app, (text, _) in {"good": (good, ""), **bad}.items():
        await specs.put(app, "v1", text.replace("name: good", f"name: {app}"))
        await specs.deploy(app, "v1")
    bucket = await open_bucket(nc, specs.subjects.specs_bucket)
    await bucket.put("binary.v.v1", b"\xff\xfe not utf-8")  # rewritten in place
    loaded = await SpecLoader(specs).load([])
    assert [a.name for a in loaded.apps] == ["good"] and loaded.complete
    assert sorted(loaded.errors) == sorted(bad)
    for app, (_, reason) in bad.items():
        assert reason in loaded.errors[app], (app, loaded.errors[app])
    # Without the depth bound, PyYAML's composer overflows the stack: still one app's fault.
    monkeypatch.setattr(locate, "MAX_DEPTH", 100_000)
    loaded = await SpecLoader(specs).load([])
    assert [a.name for a in loaded.apps] == ["good"]
    assert loaded.errors["deep"].startswith("its spec cannot be loaded: RecursionError")


async def test_a_deep_spec_fails_its_app_only_in_every_controller(
    lattice: Lattice, hosts: dict[str, HostProcess], components: dict[str, Path]
) -> None:
    source = components["hello-wat"]
    await lattice.apply(manifest("shop", "v1", source, instances=3))
    # Straight into the specs bucket, past `lattice apply`.
    await lattice.specs.put("evil", "v1", DEEP)
    await lattice.specs.deploy("evil", "v1")

    async def placed(n: int) -> bool:
        return sum((await lattice.placement("shop--web")).values()) == n

    await wait_until(lambda: _is_invalid(lattice.specs, "evil"), what="evil invalid")
    (reason,) = await reasons_of(lattice.specs, "evil")
    assert "the manifest nests deeper than 64 levels" in reason
    await wait_until(lambda: placed(3), what="shop placed")
    await lattice.apply(manifest("shop", "v2", source, instances=5))
    await wait_until(lambda: placed(5), what="shop rescaled next to the deep spec")

    # A controller started now loads the same deep spec, and keeps working too.
    lattice.controller.request_stop()
    async with running(lattice.client.nc, host_timeout_s=HOST_TIMEOUT_S, tick_s=0.2) as fresh:
        await wait_until(lambda: _leads(fresh), what="the new controller leading")
        await lattice.apply(manifest("shop", "v3", source, instances=2))
        await wait_until(lambda: placed(2), what="shop rescaled by the new controller")
        assert "evil" in fresh.spec_errors
        assert await status_of(lattice, "shop") in ("deployed", "reconciling")


async def _leads(controller: Controller) -> bool:
    return controller.is_leader


async def test_a_storm_of_link_events_costs_few_passes(nc: Connection) -> None:
    client = LatticeClient(nc)
    async with running(nc, tick_s=0.5) as controller:
        await asyncio.sleep(1.0)  # the first passes
        before = controller.passes
        started = time.monotonic()
        for i in range(2000):
            link = Link(source_id=f"storm-{i % 20}", target="keyvalue", config={"n": str(i)})
            await client.put_link(link)  # one link_set event each
        storm_s = time.monotonic() - started
        await asyncio.sleep(0.3)
        passes = controller.passes - before
    # At most one pass per tick while events keep coming (plus the one after them);
    # a pass per event, or per 20 ms as before, would be tens to thousands.
    assert passes <= storm_s / 0.5 + 3, (passes, storm_s)
    assert len(await client.links()) == 20
