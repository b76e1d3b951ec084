"""NATS credentials per role: ``lattice creds``, and the setup ``lattice up`` runs on.

``lattice up`` keeps an operator, an account per lattice and the creds it issues
under ``<state dir>/nats-auth`` (``lattice.auth``), starts its nats-server in
operator mode, and runs its host, controller and CLI calls with their own role's
creds. ``lattice creds host NAME`` issues creds for a host on another machine:
copy the file there and run ``lattice host --nats-creds FILE``; the host's id is
NAME (the creds allow serving nothing else). See docs/security.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import click

from cli.common import DEFAULT_STATE_DIR
from lattice.auth import ROLES, AuthStore
from lattice.connection import NatsOptions, connect
from lattice.kv import open_bucket
from lattice.options import NatsFlags
from lattice.subjects import Subjects

# Client options that only make sense against a server `lattice up` did not start.
CLIENT_AUTH_FLAGS = {
    "user": "--nats-user",
    "password": "--nats-password",
    "token": "--nats-token",
    "credentials_file": "--nats-creds",
    "tls_ca_file": "--tls-ca",
    "tls_cert_file": "--tls-cert",
    "tls_key_file": "--tls-key",
}


@dataclass(frozen=True)
class LocalAuth:
    """What `lattice up` needs: server arguments and the creds of each local role."""

    server_args: list[str]
    creds: dict[str, Path]

    def options(self, role: str, base: NatsOptions) -> NatsOptions:
        """``base`` (URL, name) with ``role``'s creds."""
        return dataclasses.replace(
            base, credentials_file=str(self.creds[role]), name=f"{base.name}-{role}"
        )


def refuse_client_auth_flags(nats: NatsFlags) -> None:
    """`lattice up` secures the server it starts itself: these flags would secure nothing."""
    given = [flag for field, flag in CLIENT_AUTH_FLAGS.items() if getattr(nats, field)]
    if given:
        raise click.UsageError(
            f"{', '.join(given)} only apply with --nats-url (a server lattice up does not "
            "start); the nats-server lattice up starts uses per-role creds from "
            "<state dir>/nats-auth (see docs/security.md)"
        )


def local_auth(state_dir: Path, lattice: str, host_id: str) -> LocalAuth:
    """Keys and creds for `lattice up` (made once, reused), and the server's arguments."""
    store = AuthStore.open(state_dir)
    creds = {
        "admin": store.issue(lattice, "admin"),
        "controller": store.issue(lattice, "controller"),
        "host": store.issue(lattice, "host", host_id),
    }
    return LocalAuth(store.server_args(), creds)


async def ensure_lattice_buckets(options: NatsOptions, subjects: Subjects) -> None:
    """Create the lattice's own buckets as admin: hosts may read some, never create them."""
    nc = await connect(options, reconnect=False)
    try:
        for name in (
            subjects.links_bucket,
            subjects.config_bucket,
            subjects.specs_bucket,
            subjects.lease_bucket,
        ):
            await open_bucket(nc, name)
    finally:
        await nc.close()


@click.command("creds")
@click.argument("role", type=click.Choice(ROLES))
@click.argument("name", required=False)
@click.option(
    "--state-dir",
    default=str(DEFAULT_STATE_DIR),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where `lattice up` keeps its keys (nats-auth/).",
)
@click.option(
    "--lattice",
    "lattice_name",
    default="default",
    show_default=True,
    envvar="WASMLATTICE_LATTICE",
    help="Lattice name (one NATS account each).",
)
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the creds, not their path.")
def creds(role: str, name: str | None, state_dir: Path, lattice_name: str, to_stdout: bool) -> None:
    """Issue NATS creds for ROLE (host, provider, controller, admin).

    NAME is the host id of a host, the provider id of a provider. Copy the file to
    the machine that runs it: `lattice host --nats-creds FILE --nats-url URL`.
    """
    if role in ("host", "provider") and not name:
        raise click.UsageError(f"a {role}'s creds name it: lattice creds {role} NAME")
    store = AuthStore.open(state_dir)
    new_lattice = lattice_name not in store.lattices()
    try:
        path = store.issue(lattice_name, role, name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if new_lattice:
        store.server_config()
        click.echo(
            f"lattice {lattice_name} has a new account: (re)start `lattice up` to load it",
            err=True,
        )
    if to_stdout:
        click.echo(path.read_text(), nl=False)
    else:
        click.echo(str(path))


COMMANDS = (creds,)
VERBS: dict[str, tuple[click.Command, ...]] = {}
