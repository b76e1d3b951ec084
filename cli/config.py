"""``lattice config``: named configuration stored on the lattice (JetStream).

A component started with ``--config-name NAME`` gets these values, under its own.
"""

from __future__ import annotations

import click

from cli.common import emit, key_values, nats_options, output_option, print_table, with_client
from lattice.options import NatsFlags


@click.group()
def config() -> None:
    """Named configuration, stored on the lattice."""


@config.command("put")
@click.argument("name")
@click.argument("pairs", nargs=-1, required=True, callback=key_values)
@nats_options
def config_put(name: str, pairs: tuple[tuple[str, str], ...], nats: NatsFlags) -> None:
    """Store named config NAME with KEY=VALUE pairs."""
    values = dict(pairs)
    with_client(nats, lambda c: c.put_config(name, values))
    click.echo(f"config {name}: {len(values)} value(s)")


@config.command("get")
@click.argument("name")
@nats_options
@output_option
def config_get(name: str, output: str, nats: NatsFlags) -> None:
    """Show named config NAME."""
    values = with_client(nats, lambda c: c.get_config(name))
    if values is None:
        raise click.ClickException(f"no named config {name!r}")
    emit(output, values, lambda: print_table(["KEY", "VALUE"], sorted(map(list, values.items()))))


@config.command("del")
@click.argument("name")
@nats_options
def config_del(name: str, nats: NatsFlags) -> None:
    """Delete named config NAME."""
    if not with_client(nats, lambda c: c.delete_config(name)):
        raise click.ClickException(f"no named config {name!r}")
    click.echo("deleted")


COMMANDS = (config,)
VERBS: dict[str, tuple[click.Command, ...]] = {}
