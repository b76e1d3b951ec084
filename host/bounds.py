"""The bounds of one host: labels, components, provider processes, heartbeat size.

Whatever a caller puts into a host it keeps in memory and repeats in every
heartbeat, so each of those has a limit (``HostBounds``, in ``HostConfig``) and
a request over it is refused with ``LimitExceeded`` naming the limit:

- **labels** (``label.put``, ``--label`` at start, and the annotations of scale
  and provider requests, which the inventory carries the same way): a key of at
  most 63 characters, a value of at most 255, at most 64 of them;
- **components** per host and **provider processes** per host.

The heartbeat must fit the server's max payload, or NATS refuses it and the
host goes silent while it keeps running (the controller then counts it gone).
``fit_inventory`` makes sure it fits: it leaves out, in this order and only as
far as needed, the components' exports, the long annotations, the components
and providers past those that fit, then the labels past those that fit. What
it left out is returned so the daemon can log it. All of this is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from host.errors import LimitExceeded
from lattice.messages import ComponentDescription, HostInventory, ProviderDescription, encode

# Room left for the event or reply around an inventory (type, source, time...).
ENVELOPE_BYTES = 1024
# Annotations up to this many characters (key and value) survive trimming: the
# controller's own (app, revision, managed-by) are well under it.
SHORT_ANNOTATION = 64


@dataclass(frozen=True)
class HostBounds:
    max_label_key: int = 63
    max_label_value: int = 255
    max_labels: int = 64
    max_components: int = 100
    max_providers: int = 16


def check_label(key: str, value: str, limits: HostBounds, what: str = "label") -> None:
    """LimitExceeded if the key or the value is too long."""
    if len(key) > limits.max_label_key:
        raise LimitExceeded(
            f"{what} key {_head(key)} is {len(key)} characters, "
            f"over the limit of {limits.max_label_key}"
        )
    if len(value) > limits.max_label_value:
        raise LimitExceeded(
            f"{what} {key!r} has a value of {len(value)} characters, "
            f"over the limit of {limits.max_label_value}"
        )


def check_labels(labels: Mapping[str, str], limits: HostBounds, what: str = "label") -> None:
    """LimitExceeded if there are too many labels or one is too long."""
    if len(labels) > limits.max_labels:
        raise LimitExceeded(f"{len(labels)} {what}s, over the limit of {limits.max_labels}")
    for key, value in labels.items():
        check_label(key, value, limits, what)


def check_label_put(labels: Mapping[str, str], key: str, value: str, limits: HostBounds) -> None:
    """May ``key=value`` join ``labels``? (Replacing a value adds no label.)"""
    check_label(key, value, limits)
    if key not in labels and len(labels) >= limits.max_labels:
        raise LimitExceeded(
            f"host has {len(labels)} labels, the limit: delete one before adding {key!r}"
        )


def check_count(things: str, current: int, limit: int) -> None:
    """LimitExceeded if one more of ``things`` (a plural) would go over ``limit``."""
    if current >= limit:
        raise LimitExceeded(
            f"host runs {current} {things}, its limit: stop one first or raise the limit"
        )


# -- the heartbeat -------------------------------------------------------------------


def inventory_size(inventory: HostInventory) -> int:
    return len(encode(inventory))


def fit_inventory(
    inventory: HostInventory, max_bytes: int, size: Callable[[HostInventory], int] = inventory_size
) -> tuple[HostInventory, list[str]]:
    """``inventory`` cut down to ``max_bytes`` encoded, and what was left out.

    If even the smallest cut does not fit, that cut is returned (the caller's
    publish then fails and says so).
    """
    if max_bytes <= 0 or size(inventory) <= max_bytes:
        return inventory, []
    left_out: list[str] = []
    with_exports = [c for c in inventory.components if c.exports]
    current = inventory.model_copy(
        update={"components": [c.model_copy(update={"exports": []}) for c in inventory.components]}
    )
    left_out.append(f"the exports of {len(with_exports)} components")
    if size(current) <= max_bytes:
        return current, left_out
    current, dropped = _short_annotations(current)
    left_out.append(f"{dropped} long annotations")
    if size(current) <= max_bytes:
        return current, left_out
    for field in ("components", "providers", "labels"):
        current, kept, total = _longest_fitting(current, field, max_bytes, size)
        if kept < total:
            left_out.append(f"{total - kept} of {total} {field}")
        if size(current) <= max_bytes:
            break
    return current, left_out


def _short_annotations(inventory: HostInventory) -> tuple[HostInventory, int]:
    dropped = 0

    def short(annotations: Mapping[str, str]) -> dict[str, str]:
        nonlocal dropped
        kept = {k: v for k, v in annotations.items() if len(k) + len(v) <= SHORT_ANNOTATION}
        dropped += len(annotations) - len(kept)
        return kept

    components: list[ComponentDescription] = [
        c.model_copy(update={"annotations": short(c.annotations)}) for c in inventory.components
    ]
    providers: list[ProviderDescription] = [
        p.model_copy(update={"annotations": short(p.annotations)}) for p in inventory.providers
    ]
    return inventory.model_copy(update={"components": components, "providers": providers}), dropped


def _longest_fitting(
    inventory: HostInventory,
    field: str,
    max_bytes: int,
    size: Callable[[HostInventory], int],
) -> tuple[HostInventory, int, int]:
    """Keep the longest head of ``field`` (a list or a dict) that fits; binary search."""
    items = getattr(inventory, field)
    total = len(items)

    def cut(n: int) -> HostInventory:
        head: object = dict(list(items.items())[:n]) if isinstance(items, dict) else items[:n]
        return inventory.model_copy(update={field: head})

    low, high = 0, total  # cut(low) is kept; find the largest n that fits
    while low < high:
        middle = (low + high + 1) // 2
        if size(cut(middle)) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return cut(low), low, total


def _head(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")
