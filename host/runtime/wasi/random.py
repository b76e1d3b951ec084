"""``wasi:random``: secure bytes from the OS, insecure ones from ``random``.

One call returns at most ``MAX_BYTES``; asking for more traps (the guest would
otherwise make the host allocate whatever it names).
"""

from __future__ import annotations

import os
import random as insecure_random
from collections.abc import Callable, Mapping
from typing import Any

from host.runtime.wasi.table import WasiTrap

__all__ = ["functions"]

MAX_BYTES = 1024 * 1024


def _checked(length: int) -> int:
    if length > MAX_BYTES:
        raise WasiTrap(f"asked for {length} random bytes, over {MAX_BYTES}")
    return length


def functions() -> Mapping[str, Mapping[str, Callable[..., Any]]]:
    u64 = 2**64
    return {
        "wasi:random/random": {
            "get-random-bytes": lambda _s, n: os.urandom(_checked(n)),
            "get-random-u64": lambda _s: int.from_bytes(os.urandom(8), "little"),
        },
        "wasi:random/insecure": {
            "get-insecure-random-bytes": lambda _s, n: insecure_random.randbytes(_checked(n)),
            "get-insecure-random-u64": lambda _s: insecure_random.randrange(u64),
        },
        "wasi:random/insecure-seed": {
            "insecure-seed": lambda _s: (
                insecure_random.randrange(u64),
                insecure_random.randrange(u64),
            ),
        },
    }
