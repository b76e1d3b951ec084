"""Small statistics helpers (stdlib ``statistics`` has no nearest-rank percentile)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def minus(a: float | None, b: float | None) -> float | None:
    """``a - b``, or None when either is missing (an empty sample, an unreadable counter)."""
    return None if a is None or b is None else a - b
