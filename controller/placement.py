"""Where replicas go: which hosts may take them and how many each gets. Purely computational.

``controller.reconcile`` asks, per component or placed provider of each app, for target
replicas per host; this module answers from the scaler and the hosts of the pass:

- A host is alive if it heartbeated within ``host_timeout_s`` (``alive_hosts``); a
  draining host is alive but not eligible, so it gets no new replicas.
- ``spread``: instances split over spreads by weight (largest remainder,
  ``split_by_weight``), each spread's share over its matching hosts as evenly as
  possible, preferring hosts that already run replicas, then the least loaded ones
  (``spread_evenly``). ``daemon``: ``instances`` on every matching host.
- The load per host is counted as the pass goes (``claim``), so later apps prefer other
  hosts; matching hosts are found once per requirement set and pass (``HostIndex``).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from controller.model import HostView, Observed
from deploy.model import Scaler, Spread


def alive_hosts(observed: Observed, now: float, host_timeout_s: float) -> list[HostView]:
    return sorted(
        (h for h in observed.hosts.values() if now - h.last_seen <= host_timeout_s),
        key=lambda h: h.host_id,
    )


def split_by_weight(total: int, weights: Sequence[int]) -> list[int]:
    """Largest-remainder split of ``total`` proportional to ``weights``."""
    weight_sum = sum(weights)
    if weight_sum <= 0:
        return [0] * len(weights)
    exact = [total * w / weight_sum for w in weights]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def spread_evenly(
    total: int, hosts: Sequence[HostView], current: Mapping[str, int], load: Mapping[str, int]
) -> dict[str, int]:
    """``total`` replicas over ``hosts``, as even as possible.

    Ties go to hosts already running the component (no needless moves), then to the
    least loaded hosts (so many apps do not pile onto the same few hosts).
    """
    if not hosts:
        return {}

    def preference(h: HostView) -> tuple[int, int, str]:
        return (-current.get(h.host_id, 0), load.get(h.host_id, 0), h.host_id)

    base, extra = divmod(total, len(hosts))
    if base == 0:
        # Fewer replicas than hosts: only the ``extra`` most preferred get one.
        return {h.host_id: 1 for h in heapq.nsmallest(extra, hosts, key=preference)}
    ordered = sorted(hosts, key=preference)
    return {h.host_id: base + (1 if i < extra else 0) for i, h in enumerate(ordered)}


def describe(spread: Spread) -> str:
    return ",".join(f"{k}={v}" for k, v in spread.requirements) or "any host"


class HostIndex:
    """Eligible hosts of one pass, and which of them match each set of requirements.

    Many apps share a few requirement sets; matching once per set and pass (not once
    per app) is what keeps 1,000 apps over 100 hosts fast.
    """

    def __init__(self, eligible: Sequence[HostView]) -> None:
        self.eligible = list(eligible)
        self._matching: dict[tuple[tuple[str, str], ...], list[HostView]] = {}

    def matching(self, spread: Spread) -> list[HostView]:
        found = self._matching.get(spread.requirements)
        if found is None:
            found = [h for h in self.eligible if spread.matches(h.labels)]
            self._matching[spread.requirements] = found
        return found


def placement(
    scaler: Scaler,
    index: HostIndex,
    current: Mapping[str, int],
    load: Mapping[str, int],
) -> tuple[dict[str, int], list[str]]:
    """Target replicas per host, and the reasons a part could not be placed."""
    spreads = scaler.spreads or (Spread(name="default"),)
    targets: dict[str, int] = {}
    reasons = []
    if scaler.kind == "daemon":
        for spread in spreads:
            for host in index.matching(spread):
                targets[host.host_id] = scaler.instances
        if not targets and scaler.instances > 0:
            reasons.append(f"no host matches {' or '.join(describe(s) for s in spreads)}")
        return targets, reasons
    shares = split_by_weight(scaler.instances, [s.weight for s in spreads])
    for spread, share in zip(spreads, shares, strict=True):
        matching = index.matching(spread)
        if share and not matching:
            reasons.append(f"no host matches {describe(spread)} ({share} replicas unplaced)")
            continue
        for host_id, n in spread_evenly(share, matching, current, load).items():
            targets[host_id] = targets.get(host_id, 0) + n
    return targets, reasons


def claim(load: dict[str, int], targets: Mapping[str, int], counts: Mapping[str, int]) -> None:
    """Count this placement in the hosts' load, so later ones prefer other hosts."""
    for host_id, target in targets.items():
        load[host_id] = load.get(host_id, 0) + target - counts.get(host_id, 0)
