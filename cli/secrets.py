"""``lattice secret``: secrets on the lattice, sealed at rest (``lattice.secrets``).

``lattice secret put NAME FIELD=VALUE...`` seals the values to the lattice's secrets
key; a component asks for one in its manifest (``secrets: [{name, properties: {policy,
key: NAME, field: FIELD}}]``) and gets the value as config key ``name``. A value can
stay off the command line (where other users may read it in the process list):
``FIELD=@PATH`` reads it from a file, ``FIELD=@-`` from stdin. Values are never shown:
``lattice secret list`` prints names and fields only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.common import echo, emit, key_values, nats_options, output_option, print_table, with_client
from lattice.client import LatticeClient
from lattice.options import NatsFlags
from lattice.secrets import SecretStore, check_secret_name


def _store(client: LatticeClient) -> SecretStore:
    return SecretStore(client.nc, client.subjects)


@click.group("secret")
def secret() -> None:
    """Secrets, sealed on the lattice and handed only to the hosts that need them."""


@secret.command("put")
@click.argument("name")
@click.argument("pairs", nargs=-1, required=True, callback=key_values, metavar="FIELD=VALUE...")
@nats_options
def secret_put(name: str, pairs: tuple[tuple[str, str], ...], nats: NatsFlags) -> None:
    """Store secret NAME (FIELD=VALUE, FIELD=@PATH or FIELD=@- for stdin)."""
    check_secret_name(name)
    values = {field: _value(text) for field, text in pairs}
    with_client(nats, lambda c: _store(c).put(name, values))
    echo(f"secret {name}: {len(values)} field(s) sealed")


def _value(text: str) -> str:
    if text == "@-":
        return sys.stdin.read().rstrip("\n")
    if text.startswith("@"):
        return Path(text[1:]).read_text().rstrip("\n")
    return text


@secret.command("list")
@nats_options
@output_option
def secret_list(output: str, nats: NatsFlags) -> None:
    """Secrets by name, with their fields (never their values)."""
    found = with_client(nats, lambda c: _store(c).fields())
    emit(
        output,
        found,
        lambda: print_table(["SECRET", "FIELDS"], [[n, ",".join(f)] for n, f in found.items()]),
    )


@secret.command("del")
@click.argument("name")
@nats_options
def secret_del(name: str, nats: NatsFlags) -> None:
    """Delete secret NAME."""
    if not with_client(nats, lambda c: _store(c).delete(name)):
        raise click.ClickException(f"no secret {name!r}")
    echo("deleted")


COMMANDS = (secret,)
VERBS: dict[str, tuple[click.Command, ...]] = {}
