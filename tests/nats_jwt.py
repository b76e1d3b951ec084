"""Decentralised NATS auth for tests, made by the production code (``lattice.auth``).

A nats-server in operator mode trusts the operator's JWT, finds the account's JWT in
its memory resolver, and admits a client whose user JWT the account signed and which
proves it holds the user's seed: what a ``.creds`` file carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lattice.auth import AuthStore


@dataclass(frozen=True)
class OperatorSetup:
    """Files for one operator-mode nats-server and one (admin) user's credentials."""

    server_config: Path
    creds: Path


def operator_setup(directory: Path, lattice: str = "default") -> OperatorSetup:
    store = AuthStore(directory)
    creds = store.issue(lattice, "admin")
    return OperatorSetup(store.server_config(), creds)
