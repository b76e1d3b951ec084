"""Who a host is: a stable id, a friendly name, and its labels."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import uuid
from pathlib import Path

from lattice.pairs import parse_pairs

LABEL_ENV_PREFIX = "WASMLATTICE_LABEL_"

_ADJECTIVES = (
    "amber",
    "brisk",
    "calm",
    "dusky",
    "eager",
    "frosty",
    "gentle",
    "hidden",
    "icy",
    "jolly",
    "keen",
    "lucky",
    "misty",
    "noble",
    "olive",
    "proud",
    "quiet",
    "rapid",
    "silent",
    "tidy",
    "urban",
    "vivid",
    "windy",
    "young",
)
_NOUNS = (
    "otter",
    "falcon",
    "cedar",
    "harbor",
    "meadow",
    "comet",
    "ridge",
    "lynx",
    "delta",
    "ember",
    "fjord",
    "grove",
    "heron",
    "island",
    "jasper",
    "kestrel",
)


def stable_host_id(state_dir: Path, explicit: str | None = None, slot: str = "") -> str:
    """The id given, or one generated once and kept under the state directory.

    ``slot`` (the HTTP port) tells apart several hosts started from one directory,
    e.g. `lattice up` and a second `lattice host` in the same checkout.
    """
    if explicit:
        return explicit
    path = state_dir / (f"host-id.{slot}" if slot else "host-id")
    if path.exists():
        return path.read_text().strip()
    host_id = "h-" + uuid.uuid4().hex[:12]
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(host_id + "\n")
    return host_id


def friendly_name(host_id: str) -> str:
    digest = hashlib.sha256(host_id.encode()).digest()
    return f"{_ADJECTIVES[digest[0] % len(_ADJECTIVES)]}-{_NOUNS[digest[1] % len(_NOUNS)]}"


def builtin_labels() -> dict[str, str]:
    return {
        "os": platform.system().lower(),
        "arch": platform.machine().lower(),
        "hostname": socket.gethostname(),
    }


def host_labels(explicit: list[str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """Built-in labels, then WASMLATTICE_LABEL_<key>=value variables, then --label k=v."""
    labels = builtin_labels()
    for name, value in (environ if environ is not None else dict(os.environ)).items():
        if name.startswith(LABEL_ENV_PREFIX) and len(name) > len(LABEL_ENV_PREFIX):
            labels[name[len(LABEL_ENV_PREFIX) :].lower()] = value
    labels.update(parse_pairs(explicit, "label"))
    return labels
