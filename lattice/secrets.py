"""Secrets on the lattice: sealed at rest, opened by the controller, resealed per host.

Who can read a secret's value, and where it travels::

    lattice secret put NAME K=V   seals the values to the lattice's secrets key (public
                                  half read from the bucket) and stores the sealed box
    P-L-secrets (JetStream KV)    "s.<NAME>": {fields, sealed}; "lattice-key": the public
                                  key. Values are never stored in the clear.
    controller                    holds the private key (``<state dir>/secrets.key``,
                                  0600, made by ``lattice up``); when it sends a scale
                                  command for a component that asks for secrets, it
                                  opens them and seals each value to the public key of
                                  the one host that command goes to
    host                          makes a key pair in memory at start (never stored),
                                  announces the public half in its inventory, opens the
                                  values of a scale request and hands them to the
                                  component as config values (wasi:config)

So a value is readable by the controller and by the hosts a replica of the component
is placed on, nobody else: not other hosts (a host's credentials cannot read the
secrets bucket, ``lattice.auth``, and what they might see is sealed to another key),
not a subscriber to control subjects, not ``lattice get inventory`` or ``lattice config
get``. A host that restarts has a new key, and gets its replicas (and the values
sealed anew) from the controller.

Sealing is libsodium's sealed box (X25519 + XSalsa20-Poly1305, PyNaCl): anonymous
public-key encryption, so whoever seals needs no secret of their own.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nats.aio.client import Client

from lattice.errors import LatticeError
from lattice.kv import Bucket, open_bucket
from lattice.subjects import Subjects

LATTICE_KEY = "lattice-key"
_NAME = re.compile(r"^[A-Za-z0-9][-_A-Za-z0-9]{0,127}\Z")


class SecretError(LatticeError):
    """A secret cannot be stored, found or opened (never carries a value)."""


@dataclass(frozen=True)
class SealingKey:
    """An X25519 key pair: values sealed to ``public`` only this key opens."""

    private: PrivateKey

    @classmethod
    def generate(cls) -> SealingKey:
        return cls(PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> SealingKey:
        """The key kept at ``path`` (0600), made on first use."""
        if path.exists():
            return cls(PrivateKey(base64.b64decode(path.read_bytes().strip())))
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(base64.b64encode(bytes(key.private)) + b"\n")
        return key

    @property
    def public(self) -> str:
        return base64.b64encode(bytes(self.private.public_key)).decode()

    def open(self, sealed: str) -> bytes:
        try:
            opened: bytes = SealedBox(self.private).decrypt(base64.b64decode(sealed))
            return opened
        except (CryptoError, ValueError, TypeError) as exc:
            raise SecretError("a sealed value does not open with this key") from exc


def seal(public: str, value: bytes) -> str:
    """``value`` sealed to the X25519 public key ``public`` (base64), as base64."""
    try:
        box = SealedBox(PublicKey(base64.b64decode(public)))
    except (CryptoError, ValueError, TypeError) as exc:
        raise SecretError("not a sealing key") from exc
    return base64.b64encode(box.encrypt(value)).decode()


def check_secret_name(name: str) -> str:
    if not _NAME.match(name):
        raise SecretError(f"invalid secret name {name!r}: use letters, digits, '-' and '_'")
    return name


def open_values(sealed: Mapping[str, str], key: SealingKey) -> dict[str, str]:
    """The values of a scale request's ``secrets`` (config key -> sealed value)."""
    return {name: key.open(value).decode() for name, value in sealed.items()}


class SecretStore:
    """The secrets bucket: sealed values by name, and the lattice's public key."""

    def __init__(self, nc: Client, subjects: Subjects) -> None:
        self.nc = nc
        self.subjects = subjects
        self._bucket: Bucket | None = None

    async def bucket(self) -> Bucket:
        if self._bucket is None:
            self._bucket = await open_bucket(self.nc, self.subjects.secrets_bucket)
        return self._bucket

    async def public_key(self) -> str | None:
        raw = await (await self.bucket()).get(LATTICE_KEY)
        return raw.decode() if raw else None

    async def publish_key(self, key: SealingKey) -> bool:
        """Make ``key`` the lattice's secrets key unless one is set; True if it is ``key``."""
        bucket = await self.bucket()
        raw, revision = await bucket.get_revision(LATTICE_KEY)
        if raw is None:
            await bucket.put_if(LATTICE_KEY, key.public.encode(), revision)
            raw = await bucket.get(LATTICE_KEY)
        return raw is not None and raw.decode() == key.public

    async def put(self, name: str, values: Mapping[str, str]) -> None:
        public = await self.public_key()
        if public is None:
            raise SecretError(
                "this lattice has no secrets key yet: a controller started with one "
                "(`lattice up`, or `lattice controller --secrets-key FILE`) publishes it"
            )
        sealed = seal(public, msgpack.packb(dict(values)))
        record = {"fields": sorted(values), "sealed": sealed}
        await (await self.bucket()).put(_key(name), msgpack.packb(record))

    async def fields(self) -> dict[str, list[str]]:
        """Every secret's name and field names (never values)."""
        bucket = await self.bucket()
        found = {}
        for key in await bucket.keys():
            if key.startswith("s."):
                raw = await bucket.get(key)
                record = msgpack.unpackb(raw) if raw else {}
                found[key[2:]] = [str(f) for f in record.get("fields", [])]
        return dict(sorted(found.items()))

    async def delete(self, name: str) -> bool:
        bucket = await self.bucket()
        if await bucket.get(_key(name)) is None:
            return False
        await bucket.remove(_key(name))
        return True

    async def open(self, name: str, key: SealingKey) -> dict[str, str]:
        raw = await (await self.bucket()).get(_key(name))
        if raw is None:
            raise SecretError(f"no secret {name!r} (lattice secret put {name} FIELD=VALUE)")
        try:
            record = msgpack.unpackb(raw)
            values = msgpack.unpackb(key.open(record["sealed"]))
        except (KeyError, TypeError, ValueError, msgpack.UnpackException) as exc:
            raise SecretError(f"secret {name!r} is unreadable") from exc
        return {str(k): str(v) for k, v in values.items()}

    async def sealed_for(
        self, refs: Sequence[tuple[str, str, str]], key: SealingKey, host_public: str
    ) -> dict[str, str]:
        """(config key, secret, field) references resolved and sealed to one host's key."""
        if not host_public:
            raise SecretError("the host announced no sealing key: it cannot receive secrets")
        sealed = {}
        for config_key, name, field in refs:
            values = await self.open(name, key)
            if field:
                if field not in values:
                    raise SecretError(f"secret {name!r} has no field {field!r}")
                value = values[field]
            elif len(values) == 1:
                (value,) = values.values()
            else:
                raise SecretError(f"secret {name!r} holds several fields: name one (field:)")
            sealed[config_key] = seal(host_public, value.encode())
        return sealed


def _key(name: str) -> str:
    return f"s.{check_secret_name(name)}"
