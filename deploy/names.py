"""Names an app chooses, and the lattice-wide identifiers made from them.

Apps share one lattice, so whatever an app names that ends up in a lattice-wide
namespace must be unable to collide with what another app names:

- **app and component names** are DNS-label-like: lowercase letters, digits and
  single hyphens, starting and ending with a letter or digit, at most 63
  characters (``http-component``, ``kvcounter``, ``rust-hello-world``). They
  cannot contain ``--``, so ``scoped_id(app, name) = "<app>--<name>"`` is a
  one-to-one map: ``col`` + ``x-web`` is ``col--x-web`` and ``col-x`` + ``web``
  is ``col-x--web``. Ids are subject tokens (``lattice.subjects.check_token``).
  Component ids, provider ids, and through them link keys (a link is keyed by its
  source id, or for an HTTP route by its target id) are all scoped this way.
- **versions** become JetStream keys (``<app>.v.<version>``): letters, digits,
  ``-``, ``_``, ``+``, and ``.`` only before a digit (``v1``, ``v0.0.1``,
  ``1.0.0-rc.1``), at most 64 characters; so no version ends in a key word of the
  specs bucket (``1.index`` is refused).
- **generated versions**: a manifest without ``metadata.annotations.version`` gets
  one when it is applied, as wadm does: ``v`` + a ULID (``generated_version``), 26
  Crockford base32 characters, the first ten the time in milliseconds, so versions
  generated later sort later (as text) and none collides with another.
- **HTTP routes** (path prefix and optional Host) are shared by every app on the
  lattice's HTTP servers: ``route_of`` is the identity two apps must not both claim.
- **keyvalue buckets** are named in link config (``bucket``, ``bucket.<id>``);
  ``kv_buckets`` lists them so the lattice's own buckets can be refused.

Pure functions, no project imports: ``deploy`` is the bottom layer.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from catalog.kinds import HTTP_SERVER, KEYVALUE, placed_kind
from deploy.model import AppSpec, LinkDecl

SEPARATOR = "--"
MAX_NAME = 63
MAX_VERSION = 64

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]*(\.[0-9][A-Za-z0-9_+-]*)*\Z")
# A link's namespace, package and name are parts of its key.
_LINK_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*\Z")

NAME_RULE = "use lowercase letters, digits and single '-' (not at either end), at most 63"
VERSION_RULE = (
    "use letters, digits, '-', '_', '+', and '.' only before a digit (v1, v0.0.1), at most 64"
)


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be an app or component name, or None."""
    if len(value) > MAX_NAME or not _NAME.match(value) or SEPARATOR in value:
        return f"'{value}' is not a lattice token: {NAME_RULE}"
    return None


def check_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def version_problem(value: str) -> str | None:
    """Why ``value`` cannot be a version, or None."""
    if value == "latest":
        return "'latest' is not allowed as a version (as in wadm)"
    if len(value) > MAX_VERSION or not _VERSION.match(value):
        return f"invalid version '{value}': {VERSION_RULE}"
    return None


def check_version(value: str) -> str:
    problem = version_problem(value)
    if problem:
        raise ValueError(problem)
    return value


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def generated_version(now_ms: int, entropy: bytes) -> str:
    """``v`` + a ULID of ``now_ms`` (48 bits) and ``entropy`` (10 bytes): sortable by time."""
    if len(entropy) != 10 or not 0 <= now_ms < 2**48:
        raise ValueError("a ULID takes a 48-bit time in ms and 10 bytes of entropy")
    number = (now_ms << 80) | int.from_bytes(entropy, "big")
    chars = [_CROCKFORD[(number >> (5 * i)) & 31] for i in range(25, -1, -1)]
    return "v" + "".join(chars)


def new_version() -> str:
    """A fresh generated version (now, random entropy)."""
    return generated_version(time.time_ns() // 1_000_000, os.urandom(10))


def link_part_problem(value: str) -> str | None:
    if not _LINK_PART.match(value):
        return f"'{value}' cannot be part of a link key: no '/', ':' or spaces"
    return None


def scoped_id(app: str, name: str) -> str:
    """The lattice id of component (or provider) ``name`` of ``app``."""
    return f"{app}{SEPARATOR}{name}"


def app_of(scoped: str) -> str | None:
    """The app a ``scoped_id`` belongs to (None for an id no app made)."""
    app, sep, _ = scoped.partition(SEPARATOR)
    return app if sep else None


@dataclass(frozen=True, order=True)
class RouteKey:
    """What an HTTP route claims: a Host (empty: any) and a path prefix, on the host's
    main listener or (``address``) on a listener of its own."""

    host: str
    path: str
    address: str = ""

    def __str__(self) -> str:
        route = f"{self.host or '*'}{self.path}"
        return f"{route} on {self.address}" if self.address else route


def route_key(config: dict[str, str]) -> RouteKey:
    """The route an http-server link's config claims (as the host's route table sees it:
    ``/a`` and ``/a/`` are one prefix, Host names are case-insensitive)."""
    path = config.get("path", "/").rstrip("/") or "/"
    address = (config.get("address") or "").strip().lower()
    return RouteKey((config.get("host") or "").lower(), path, address)


def routes(app: AppSpec) -> Iterator[tuple[RouteKey, LinkDecl]]:
    """The HTTP routes ``app`` declares (links from its http-server capabilities)."""
    providers = {c.name: c.provider for c in app.capabilities}
    for decl in app.links:
        if providers.get(decl.source) == HTTP_SERVER:
            yield route_key(dict(decl.source_config)), decl


def kv_buckets(app: AppSpec) -> Iterator[tuple[str, LinkDecl]]:
    """(bucket, link) for every keyvalue bucket ``app``'s links map an identifier to."""
    providers = {c.name: c.provider for c in app.capabilities}
    for decl in app.links:
        kind = providers.get(decl.target) or ""
        placed = placed_kind(kind)
        if kind != KEYVALUE and (placed is None or placed.serves != KEYVALUE):
            continue
        for key, value in decl.target_config:
            if key == "bucket" or key.startswith("bucket."):
                yield value, decl
