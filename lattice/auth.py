"""Roles on NATS: an operator, an account per lattice, and users per role, as JWTs.

A nats-server in operator mode trusts one operator's JWT. Each lattice is an
*account* the operator signed (the server preloads the account JWTs), and each
account has its own subjects and its own JetStream: users of one lattice reach
nothing of another. A client proves who it is with a ``.creds`` file: a user JWT
the account signed, and the user's nkey seed (the server checks a signature made
with it). The user JWT carries the user's permissions, so the server, not the
client, decides what the holder may publish and subscribe to.

Roles (``permissions()`` builds their allow and deny lists; ``P.L`` = the lattice's
subject root, see ``lattice.subjects``)::

    admin       the CLI: writes desired state (specs, links, config, lease), sends
                control commands, calls components; may not serve anything
    controller  like admin, minus the JetStream admin API beyond KV buckets
    host        bound to one host id: serves P.L.ctl.host.<id>.> and ping, publishes
                events only as P.L.evt.<type>.<id>, answers invocations and provider
                calls, reads links/config, reads and writes the components' data
                buckets (never creates streams); never the specs, lease or secrets
                buckets
    provider    bound to one provider id: serves P.L.prov.<id>.> only

Everyone subscribes only to its own inbox prefix ``_INBOX.<user public key>``,
so nobody reads replies meant for another; answering a request is allowed by the
JWT's response permission, so nobody may publish into another's inbox unasked.

Everything lives in a directory (``AuthStore``, ``<state dir>/nats-auth``)::

    operator.nk operator.jwt system.nk system.jwt server.conf
    lattices/<lattice>/account.nk account.jwt
    lattices/<lattice>/<role>/<name>.creds

Seeds and creds are 0600 and reused on restart. Nothing here talks to NATS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys  # type: ignore[import-untyped]

from lattice.errors import AuthError
from lattice.subjects import Subjects, check_token

ROLES = ("admin", "controller", "host", "provider")
UNLIMITED = -1
ROLE_TAG = "role:"
# How long a responder may take to answer a request (the response permission).
RESPONSE_TTL_NS = 10 * 60 * 10**9
INBOX = "_INBOX"

_CREDS_JWT = re.compile(
    r"-----BEGIN NATS USER JWT-----\s*(\S+)\s*------END NATS USER JWT------", re.MULTILINE
)


# -- keys and JWTs -------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """An nkey: its seed (secret) and public key (the identity others name)."""

    seed: bytes
    public_key: str

    @classmethod
    def new(cls, prefix: int) -> Identity:
        return cls.from_seed(nkeys.encode_seed(os.urandom(32), prefix))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        return cls(seed, nkeys.from_seed(seed).public_key.decode())

    def sign(self, data: bytes) -> bytes:
        signature: bytes = nkeys.from_seed(self.seed).sign(data)
        return signature


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def encode_jwt(issuer: Identity, subject: str, name: str, nats: dict[str, Any]) -> str:
    """A NATS v2 JWT (ed25519-nkey) with ``nats`` as its typed claims."""
    claims: dict[str, Any] = {
        "jti": "",
        "iat": int(time.time()),
        "iss": issuer.public_key,
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    digest = hashlib.new("sha512_256", json.dumps(claims).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = issuer.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{_b64(signature)}"


def decode_jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the server verifies; we only read our own)."""
    try:
        body = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError) as exc:
        raise AuthError(f"not a JWT: {exc}") from exc
    if not isinstance(claims, dict):
        raise AuthError("not a JWT: its claims are not an object")
    return claims


def creds_text(user_jwt: str, seed: bytes) -> str:
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed.decode()}\n"
        "------END USER NKEY SEED------\n"
    )


# -- what a creds file says about its holder ---------------------------------------------


@dataclass(frozen=True)
class UserClaims:
    """Who a creds file's user is: its name (a host's id), role and public key."""

    name: str
    role: str | None
    public_key: str

    @property
    def inbox_prefix(self) -> str:
        return inbox_prefix(self.public_key)

    @property
    def host_id(self) -> str | None:
        """The host id the creds are bound to (None unless a host's)."""
        return self.name if self.role == "host" else None


def inbox_prefix(user_public_key: str) -> str:
    """The user's own reply subjects: ``_INBOX.<key>.>`` is all it may subscribe to there."""
    return f"{INBOX}.{user_public_key}"


def read_creds(path: str | Path) -> UserClaims:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise AuthError(f"cannot read NATS credentials {path}: {exc}") from exc
    match = _CREDS_JWT.search(text)
    if match is None:
        raise AuthError(f"{path} is not a NATS credentials file (no user JWT in it)")
    claims = decode_jwt_claims(match.group(1))
    nats_claims = claims.get("nats") or {}
    tags = [str(t) for t in nats_claims.get("tags") or []]
    role = next((t[len(ROLE_TAG) :] for t in tags if t.startswith(ROLE_TAG)), None)
    return UserClaims(str(claims.get("name", "")), role, str(claims.get("sub", "")))


def bound_host_id(path: str | None, wanted: str | None = None) -> str | None:
    """The host id the creds at ``path`` are bound to (a host user's name), if any.

    A host may only serve its own id's control subjects, so a daemon with such
    creds takes that id; asking for another is an error, not a silent mismatch.
    """
    bound = read_creds(path).host_id if path else None
    if bound and wanted and wanted != bound:
        raise AuthError(f"--host-id {wanted} differs from host id {bound} of the creds {path}")
    return bound


# -- permissions per role ------------------------------------------------------------


def _bucket_api(bucket: str) -> list[str]:
    """Every JetStream API subject naming one KV bucket's stream."""
    return [f"$JS.API.*.*.KV_{bucket}", f"$JS.API.*.*.KV_{bucket}.>"]


# Reading any stream (NATS wildcards match whole tokens, so "KV_*" is no pattern;
# the streams of a lattice's account are its KV buckets).
_KV_READ_API = [
    "$JS.API.STREAM.INFO.*",
    "$JS.API.STREAM.MSG.GET.*",
    "$JS.API.DIRECT.GET.*",
    "$JS.API.DIRECT.GET.*.>",
]
def _object_read_api(bucket: str) -> list[str]:
    """What reading one object store takes: finding its stream, an ordered consumer on it
    (created, asked about, deleted) and its flow-control replies."""
    stream = f"OBJ_{bucket}"
    return [
        "$JS.API.STREAM.NAMES",  # nats-py looks the stream up by subject first
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


# Creating and changing buckets. A stream may capture any subject of the account
# (control requests, inboxes): only the roles trusted with desired state get these.
_KV_WRITE_API = ["$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.UPDATE.*", "$JS.API.STREAM.PURGE.*"]


def permissions(role: str, subjects: Subjects, name: str, user_key: str) -> dict[str, Any]:
    """The ``pub``/``sub``/``resp`` claims of a user of ``role`` named ``name``.

    Pure: tests and docs/security.md read the lists from here.
    """
    root = subjects.root
    inbox = f"{inbox_prefix(user_key)}.>"
    own_state = [
        subjects.links_bucket,
        subjects.config_bucket,
        subjects.specs_bucket,
        subjects.lease_bucket,
        subjects.secrets_bucket,
    ]
    if role == "admin":
        # Trusted to change anything in its lattice, and to call components; but it
        # serves nothing, so it cannot pose as a host, a component or a provider.
        # "$O.>": uploading components into the lattice's object store (lattice apply).
        pub = {"allow": [f"{root}.>", "$KV.>", "$O.>", "$JS.API.>"]}
        sub = {"allow": [f"{root}.evt.>", inbox]}
        return {"pub": pub, "sub": sub}
    if role == "controller":
        pub = {"allow": [f"{root}.ctl.>", f"{root}.evt.>", "$KV.>", *_KV_READ_API, *_KV_WRITE_API]}
        sub = {"allow": [f"{root}.evt.>", inbox]}
        return {"pub": pub, "sub": sub}
    if role == "host":
        host_id = check_token("host id", name)
        pub = {
            "allow": [
                subjects.events_from(host_id),
                f"{root}.rpc.>",
                f"{root}.prov.>",
                # The components' keyvalue buckets (any name: links name them; the
                # link's writer creates them, see lattice.state.put_link).
                "$KV.>",
                *_KV_READ_API,
                # Reading uploaded components (lattice.artifacts): a consumer on that
                # one object store's stream; writing it stays the admin's.
                *_object_read_api(subjects.artifacts_bucket),
            ],
            "deny": [
                # The lattice's own buckets: links and config may be read, not written;
                # specs (may hold every app's config), the lease and the secrets (sealed,
                # and a host gets its components' values from the controller) not even read.
                *(f"$KV.{bucket}.>" for bucket in own_state),
                *_bucket_api(subjects.specs_bucket),
                *_bucket_api(subjects.lease_bucket),
                *_bucket_api(subjects.secrets_bucket),
            ],
        }
        sub = {
            "allow": [
                subjects.host_control_all(host_id),
                subjects.ping,
                f"{root}.evt.>",
                f"{root}.rpc.>",
                # Providers a host supervises run with the host's credentials.
                f"{root}.prov.>",
                inbox,
            ]
        }
        return {"pub": pub, "sub": sub, "resp": _responses()}
    if role == "provider":
        provider_id = check_token("provider id", name)
        own = subjects.provider_all(provider_id)
        # An allow list must not be empty (empty means everything): its own subjects.
        return {
            "pub": {"allow": [own]},
            "sub": {"allow": [own, inbox]},
            "resp": _responses(),
        }
    raise AuthError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")


def _responses() -> dict[str, int]:
    """Answer each request received once, within the TTL: replies go to any inbox."""
    return {"max": 1, "ttl": RESPONSE_TTL_NS}


# -- the files ---------------------------------------------------------------------------


def auth_dir(state_dir: Path) -> Path:
    return state_dir / "nats-auth"


def lattice_dir(root: Path, lattice: str) -> Path:
    return root / "lattices" / check_token("lattice name", lattice)


def creds_path(root: Path, lattice: str, role: str, name: str) -> Path:
    """Where the creds of user ``name`` (a host id, or the role) are kept; made by ``issue``."""
    return lattice_dir(root, lattice) / role / f"{check_token(f'{role} name', name)}.creds"


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 from the start: never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    path.chmod(0o600)


def _load_or_new(path: Path, prefix: int) -> Identity:
    if path.exists():
        return Identity.from_seed(path.read_bytes().strip())
    identity = Identity.new(prefix)
    _write_secret(path, identity.seed.decode() + "\n")
    return identity


_ACCOUNT_LIMITS = {
    "subs": UNLIMITED,
    "data": UNLIMITED,
    "payload": UNLIMITED,
    "imports": UNLIMITED,
    "exports": UNLIMITED,
    "wildcards": True,
    "conn": UNLIMITED,
    "leaf": UNLIMITED,
    # JetStream on for the account (links, config, specs and data live there).
    "mem_storage": UNLIMITED,
    "disk_storage": UNLIMITED,
    "streams": UNLIMITED,
    "consumer": UNLIMITED,
}


class AuthStore:
    """The operator, system account, lattice accounts and issued creds, on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.operator = _load_or_new(self.root / "operator.nk", nkeys.PREFIX_BYTE_OPERATOR)
        # The server's own account (JetStream and monitoring need one).
        self.system = _load_or_new(self.root / "system.nk", nkeys.PREFIX_BYTE_ACCOUNT)

    @classmethod
    def open(cls, state_dir: Path) -> AuthStore:
        """The store under ``state_dir``, its operator and system keys made on first use."""
        return cls(auth_dir(state_dir))

    def lattice_dir(self, lattice: str) -> Path:
        return lattice_dir(self.root, lattice)

    def lattices(self) -> list[str]:
        found = (self.root / "lattices").glob("*/account.nk")
        return sorted(path.parent.name for path in found)

    def account(self, lattice: str) -> Identity:
        """The lattice's account key, made on first use."""
        return _load_or_new(self.lattice_dir(lattice) / "account.nk", nkeys.PREFIX_BYTE_ACCOUNT)

    def server_config(self) -> Path:
        """Write the server's config for every lattice known here; returns its path.

        Rewritten each time (JWTs carry an issue time); the keys stay the same, so
        every creds file issued before still works.
        """
        operator_jwt = encode_jwt(
            self.operator, self.operator.public_key, "wasmlattice", {"type": "operator"}
        )
        (self.root / "operator.jwt").write_text(operator_jwt + "\n")
        preload = {
            self.system.public_key: encode_jwt(
                self.operator, self.system.public_key, "SYS", {"type": "account"}
            )
        }
        for lattice in self.lattices():
            account = self.account(lattice)
            preload[account.public_key] = encode_jwt(
                self.operator,
                account.public_key,
                lattice,
                {"type": "account", "limits": _ACCOUNT_LIMITS},
            )
        entries = "".join(f'  {key}: "{jwt}"\n' for key, jwt in preload.items())
        config = self.root / "server.conf"
        _write_secret(
            config,
            f'operator: "{self.root / "operator.jwt"}"\n'
            f"system_account: {self.system.public_key}\n"
            "resolver: MEMORY\n"
            f"resolver_preload: {{\n{entries}}}\n",
        )
        return config

    def server_args(self) -> list[str]:
        """nats-server arguments for operator mode with every lattice's account."""
        return ["--config", str(self.server_config())]

    def creds_path(self, lattice: str, role: str, name: str) -> Path:
        return creds_path(self.root, lattice, role, name)

    def issue(self, lattice: str, role: str, name: str | None = None, *, prefix: str = "") -> Path:
        """The creds file of user ``name`` with ``role`` in ``lattice``; made once, reused.

        A host's name is its host id, a provider's its provider id.
        """
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        name = name or role
        path = self.creds_path(lattice, role, name)
        if path.exists():
            return path
        subjects = Subjects(lattice=lattice, **({"prefix": prefix} if prefix else {}))
        account = self.account(lattice)
        user = Identity.new(nkeys.PREFIX_BYTE_USER)
        claims = {
            "type": "user",
            **permissions(role, subjects, name, user.public_key),
            "subs": UNLIMITED,
            "data": UNLIMITED,
            "payload": UNLIMITED,
            "tags": [f"{ROLE_TAG}{role}", f"lattice:{lattice}"],
        }
        _write_secret(
            path, creds_text(encode_jwt(account, user.public_key, name, claims), user.seed)
        )
        return path
