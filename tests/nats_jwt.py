"""Decentralised NATS auth for tests: an operator, an account and a user, as JWTs.

A nats-server in operator mode trusts the operator's JWT, finds the account's JWT in
its memory resolver, and admits a client whose user JWT the account signed and which
proves it holds the user's seed: what a ``.creds`` file carries. Made here from nkeys
(Ed25519 keys with a role prefix) so the tests need no ``nsc`` tool.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys

UNLIMITED = -1


@dataclass(frozen=True)
class Identity:
    seed: bytes
    public_key: str

    @classmethod
    def new(cls, prefix: int) -> Identity:
        seed = nkeys.encode_seed(os.urandom(32), prefix)
        return cls(seed, nkeys.from_seed(seed).public_key.decode())

    def sign(self, data: bytes) -> bytes:
        signature: bytes = nkeys.from_seed(self.seed).sign(data)
        return signature


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def encode_jwt(issuer: Identity, subject: str, name: str, nats: dict[str, Any]) -> str:
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


@dataclass(frozen=True)
class OperatorSetup:
    """Files for one operator-mode nats-server and one user's credentials."""

    server_config: Path
    creds: Path


def operator_setup(directory: Path) -> OperatorSetup:
    directory.mkdir(parents=True, exist_ok=True)
    operator = Identity.new(nkeys.PREFIX_BYTE_OPERATOR)
    account = Identity.new(nkeys.PREFIX_BYTE_ACCOUNT)
    system = Identity.new(nkeys.PREFIX_BYTE_ACCOUNT)  # the server's own (JetStream needs it)
    user = Identity.new(nkeys.PREFIX_BYTE_USER)
    operator_jwt = encode_jwt(operator, operator.public_key, "ops", {"type": "operator"})
    limits = {
        "subs": UNLIMITED,
        "data": UNLIMITED,
        "payload": UNLIMITED,
        "imports": UNLIMITED,
        "exports": UNLIMITED,
        "wildcards": True,
        "conn": UNLIMITED,
        "leaf": UNLIMITED,
        # JetStream on for this account (links, config and state live there).
        "mem_storage": UNLIMITED,
        "disk_storage": UNLIMITED,
        "streams": UNLIMITED,
        "consumer": UNLIMITED,
    }
    account_jwt = encode_jwt(
        operator, account.public_key, "lattice", {"type": "account", "limits": limits}
    )
    system_jwt = encode_jwt(operator, system.public_key, "SYS", {"type": "account"})
    user_claims = {
        "type": "user",
        "pub": {},
        "sub": {},
        "subs": UNLIMITED,
        "data": UNLIMITED,
        "payload": UNLIMITED,
    }
    user_jwt = encode_jwt(account, user.public_key, "host", user_claims)
    (directory / "operator.jwt").write_text(operator_jwt)
    config = directory / "server.conf"
    config.write_text(
        f'operator: "{directory / "operator.jwt"}"\n'
        f"system_account: {system.public_key}\n"
        "resolver: MEMORY\n"
        "resolver_preload: {\n"
        f'  {account.public_key}: "{account_jwt}"\n'
        f'  {system.public_key}: "{system_jwt}"\n'
        "}\n"
    )
    creds = directory / "host.creds"
    creds.write_text(
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user.seed.decode()}\n"
        "------END USER NKEY SEED------\n"
    )
    creds.chmod(0o600)
    return OperatorSetup(config, creds)
