"""Controller: failover after a host's SIGKILL, and apply to serving at 50 replicas.

A real lattice, all local (``controller_lattice``): nats-server (JetStream) in a temp dir,
three ``lattice host`` processes labelled zone=eu, eu, us (each its own process, stopped by
pid in ``finally``) and a ``Controller`` in the bench process, as ``lattice up`` runs one
beside a host.

1. failover: an app of 4 hello-wat replicas (spreadscaler: eu weight 2, us weight 1, so
   2 + 1 on the eu hosts and 1 on the us host), routed at ``/``. Each round SIGKILLs the
   eu host running the most replicas and times, from the kill, until the survivors'
   inventories sum to 4 again and every survivor running it answers ``GET /`` with 200.
   A fresh replacement host (new host id, zone=eu) joins between rounds, so every round
   kills a host with replicas. Once with a fast heartbeat, once with the defaults.
2. apply to serving: ``SpecStore.deploy`` of an app of 50 replicas (no spread: 17/17/16)
   until the inventories sum to 50 and every host answers ``GET /fifty``; undeployed (and
   gone from every host) between rounds, a new version each round.

What one ``reconcile()`` pass costs, without a lattice, is the ``reconcile`` section.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.context import Config, prepare_components
from bench.sections import Output
from bench.sections.controller_lattice import (
    Bench,
    Timing,
    add_host,
    kill,
    on_the_wire,
    replica_counts,
    running_lattice,
    serving,
    until,
    wait_gone,
    wait_host_joined,
    wait_settled,
)
from bench.stats import median
from bench.table import Table, fmt, median_range, verdict
from lattice import eventloop

TITLE = "failover after SIGKILL, and apply to serving (50 replicas)"

FAILOVER_APP = "failover"
FAILOVER_REPLICAS = 4
APPLY_APP = "fifty"
APPLY_REPLICAS = 50
APPLY_PATH = "/fifty"
FAILOVER_ROUNDS = 5
APPLY_ROUNDS = 3
FAILOVER_GOAL_MS = 3000.0

# Samples per key, one value per round (ms, unless the key says otherwise).
Samples = dict[str, list[float]]

# What the integration tests use, and what `lattice host` / `Controller` default to.
FAST = Timing("fast", heartbeat_s=0.3, host_timeout_s=1.0, tick_s=0.2, lease_ttl_s=1.5)
DEFAULTS = Timing("defaults", heartbeat_s=1.0, host_timeout_s=2.5, tick_s=0.5, lease_ttl_s=3.0)


def run(config: Config) -> Output:
    wasm = prepare_components(["hello-wat"])["hello-wat"]
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp:
        results = eventloop.run(_run_lattices(config, wasm, Path(tmp)))
    fast, applied, defaults = results
    return Output(
        [
            _failover_table([(FAST, fast), (DEFAULTS, defaults)]),
            _rounds_table([(FAST, fast), (DEFAULTS, defaults)]),
            _apply_table(applied),
        ]
    )


async def _run_lattices(config: Config, wasm: Path, tmp: Path) -> tuple[Samples, Samples, Samples]:
    # A fresh lattice per timing, so the defaults run inherits no dead hosts or state.
    async with running_lattice(FAST, wasm, tmp / "fast") as bench:
        fast = await _measure_failover(bench, config.rounds_or(FAILOVER_ROUNDS))
        applied = await _measure_apply(bench, config.rounds_or(APPLY_ROUNDS))
    async with running_lattice(DEFAULTS, wasm, tmp / "defaults") as bench:
        defaults = await _measure_failover(bench, config.rounds_or(FAILOVER_ROUNDS))
    return fast, applied, defaults


# -- 1. failover --------------------------------------------------------------------------------


async def _measure_failover(bench: Bench, rounds: int) -> Samples:
    from controller.reconcile import component_id

    cid = component_id(FAILOVER_APP, "web")
    text = _manifest(FAILOVER_APP, "v1", bench.wasm, FAILOVER_REPLICAS, "/", spread=True)
    await _put(bench, FAILOVER_APP, "v1", text)
    await bench.specs.deploy(FAILOVER_APP, "v1")
    await wait_settled(bench, cid, FAILOVER_REPLICAS, "/")
    samples: Samples = {}
    for number in range(rounds):
        # Detection depends on how long before the kill the victim last heartbeated.
        # Left alone, the settle loop would lock every kill to about the same phase; set
        # phases spread the rounds evenly over the heartbeat interval instead.
        phase_s = (number + 0.5) / rounds * bench.timing.heartbeat_s
        for key, value in (await _failover_round(bench, cid, phase_s)).items():
            samples.setdefault(key, []).append(value)
        # A new host id each time: the controller must treat it as a new host.
        replacement = add_host(bench, f"eu-r{number + 1}", "eu")
        await wait_host_joined(bench, replacement)
        await wait_settled(bench, cid, FAILOVER_REPLICAS, "/")
    await bench.specs.undeploy(FAILOVER_APP)
    await wait_gone(bench, cid)
    return samples


async def _failover_round(bench: Bench, cid: str, phase_s: float) -> dict[str, float]:
    counts = await replica_counts(bench, list(bench.hosts), cid)
    eu = [h for h in counts if bench.hosts[h].zone == "eu"]
    victim = max(eu, key=lambda h: (counts[h], h))
    survivors = [h for h in bench.hosts if h != victim]
    await _after_heartbeat(bench, victim, phase_s)
    # How old the controller's latest news of the victim is: detection can only start
    # host_timeout_s after that heartbeat, so this explains most of a round's spread.
    heard_ms = (time.time() - bench.controller.hosts[victim].last_seen) * 1000
    killed = time.perf_counter()
    kill(bench.hosts.pop(victim))
    placed, served = await serving(bench, survivors, cid, FAILOVER_REPLICAS, "/")
    sent, done = await on_the_wire(bench, killed, cid)
    return {
        "lost": float(counts[victim]),
        "heard": heard_ms,
        "sent": (sent - killed) * 1000,
        "done": (done - killed) * 1000,
        "placed": (placed - killed) * 1000,
        "served": (served - killed) * 1000,
    }


async def _after_heartbeat(bench: Bench, host_id: str, phase_s: float) -> None:
    """Return ``phase_s`` after the controller receives the host's next heartbeat."""
    views = bench.controller.hosts
    before = views[host_id].last_seen
    await until(lambda: views[host_id].last_seen > before, 10.0, f"a heartbeat of {host_id}")
    await asyncio.sleep(max(0.0, views[host_id].last_seen + phase_s - time.time()))


# -- 2. apply to serving ---------------------------------------------------------------------


async def _measure_apply(bench: Bench, rounds: int) -> Samples:
    from controller.reconcile import component_id

    cid = component_id(APPLY_APP, "web")
    samples: Samples = {}
    for number in range(rounds):
        version = f"v{number + 1}"
        text = _manifest(APPLY_APP, version, bench.wasm, APPLY_REPLICAS, APPLY_PATH, spread=False)
        await _put(bench, APPLY_APP, version, text)  # untimed: the deploy is the trigger
        for key, value in (await _apply_round(bench, cid, version)).items():
            samples.setdefault(key, []).append(value)
        await bench.specs.undeploy(APPLY_APP)
        await wait_gone(bench, cid)
    return samples


async def _apply_round(bench: Bench, cid: str, version: str) -> dict[str, float]:
    started = time.perf_counter()
    await bench.specs.deploy(APPLY_APP, version)
    deployed = time.perf_counter()
    placed, served = await serving(bench, list(bench.hosts), cid, APPLY_REPLICAS, APPLY_PATH)
    sent, done = await on_the_wire(bench, started, cid)
    return {
        "deployed": (deployed - started) * 1000,
        "sent": (sent - started) * 1000,
        "done": (done - started) * 1000,
        "placed": (placed - started) * 1000,
        "served": (served - started) * 1000,
    }


# -- specs ------------------------------------------------------------------------------------


def _manifest(app: str, version: str, wasm: Path, instances: int, path: str, spread: bool) -> str:
    """A wadm manifest: hello-wat under a spreadscaler, routed by the http-server at ``path``."""
    spreads = """
            spread:
              - name: eu
                requirements:
                  zone: eu
                weight: 2
              - name: us
                requirements:
                  zone: us
                weight: 1""" if spread else ""  # fmt: skip
    return f"""\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {app}
  annotations:
    version: {version}
spec:
  components:
    - name: web
      type: component
      properties:
        image: {wasm}
      traits:
        - type: spreadscaler
          properties:
            instances: {instances}{spreads}
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
              name: web
            source:
              config:
                - name: route
                  properties:
                    path: {path}
"""


async def _put(bench: Bench, app: str, version: str, text: str) -> None:
    from deploy.manifest import load_manifest

    # Parsed first, as `lattice apply` does: a bad manifest fails here, not in a timeout.
    load_manifest(text, f"{app}@{version}", base_dir=bench.tmp)
    await bench.specs.put(app, version, text, base_dir=str(bench.tmp))


# -- tables --------------------------------------------------------------------------------------


FAILOVER_STEPS = [
    ("sent", "the controller sends the replacement scale request (detection)"),
    ("done", "the survivor has started them (its component_scaled event)"),
    ("placed", "the survivors' inventories sum to 4 again"),
    ("served", "... and every survivor running it answers GET / with 200"),
]


def _failover_table(runs: list[tuple[Timing, Samples]]) -> Table:
    rounds = len(runs[0][1]["served"])
    table = Table(
        f"Failover: ms from SIGKILL of a host running replicas, median (min-max) of {rounds} "
        "rounds",
        ["after the SIGKILL", *(timing.text for timing, _ in runs)],
    )
    for key, label in FAILOVER_STEPS:
        table.add(label, *(median_range(samples[key]) for _, samples in runs))
    table.add("restart alone: request sent -> survivor serving",
              *(median_range(_minus(s["served"], s["sent"]), 1) for _, s in runs))  # fmt: skip
    table.add(f"aim <= {FAILOVER_GOAL_MS:.0f} ms (median)",
              *(verdict(median(s["served"]), FAILOVER_GOAL_MS) for _, s in runs))  # fmt: skip
    table.notes += [
        "4 replicas of hello-wat (eu 2 : us 1 -> 2 + 1 on the eu hosts, 1 on us); each round "
        "kills the eu host with the most replicas; a new eu host (new id) joins between rounds "
        "and the controller moves one replica onto it before the next kill.",
        "Round n of N kills (n - 0.5) / N of a heartbeat interval after the victim's last "
        "heartbeat reached the controller, so the rounds sample the interval evenly.",
        "Timestamps: scale requests and component_scaled events as the bench receives them "
        "from NATS; placement from each survivor's own inventory (request/reply every 5 ms).",
    ]
    return table


def _minus(later: list[float], earlier: list[float]) -> list[float]:
    return [b - a for a, b in zip(earlier, later, strict=True)]


def _rounds_table(runs: list[tuple[Timing, Samples]]) -> Table:
    table = Table(
        "Failover rounds: detection vs the age of the victim's last heartbeat, ms",
        ["round", "replicas lost", "heard: last heartbeat before the kill",
         "floor: host timeout - heard", "detection", "detection - floor", "kill -> serving"],
    )  # fmt: skip
    for timing, samples in runs:
        for n, heard in enumerate(samples["heard"]):
            floor = timing.host_timeout_s * 1000 - heard
            sent, served = samples["sent"][n], samples["served"][n]
            cells = [heard, floor, sent, sent - floor, served]
            table.add(f"{timing.label} #{n + 1}", f"{samples['lost'][n]:.0f}",
                      *(fmt(cell, 0) for cell in cells))  # fmt: skip
    table.notes.append(
        "The controller counts a host dead once it has not heard from it for host timeout, "
        "and acts on its next pass after that (every tick, or sooner on any event such as "
        "another host's heartbeat, then a 20 ms debounce): detection = floor + that wait."
    )
    return table


APPLY_STEPS = [
    ("deployed", "SpecStore.deploy() returns (index CAS + spec_changed event)"),
    ("sent", "the controller sends the first scale request"),
    ("done", "the last host has started its replicas (component_scaled)"),
    ("placed", "inventories sum to 50"),
    ("served", "... and every host answers GET /fifty with 200"),
]


def _apply_table(samples: Samples) -> Table:
    rounds = len(samples["served"])
    table = Table(
        f"Apply to serving: {APPLY_REPLICAS} replicas of hello-wat over 3 hosts (17/17/16), "
        f"warm compile cache, ms after SpecStore.deploy() is called, {rounds} rounds",
        ["step", "median", "min", "max"],
    )
    for key, label in APPLY_STEPS:
        values = samples[key]
        table.add(label, fmt(median(values), 1), fmt(min(values), 1), fmt(max(values), 1))
    table.notes.append(
        "Each round puts a new version (untimed), deploys it, then undeploys and waits until "
        "no host runs it and the controller has nothing in flight."
    )
    return table
