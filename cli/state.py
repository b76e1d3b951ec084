"""``lattice`` commands for links, named config, host labels and events."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import click

from cli.common import (
    emit,
    make_nats_options,
    nats_options,
    output_option,
    print_table,
    resolve_host,
    run,
    with_client,
)
from host.identity import parse_label
from lattice.client import LatticeClient
from lattice.events import HostHeartbeat
from lattice.messages import Link, LinkRef


def _parse_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    return dict(parse_label(p) for p in pairs)


# -- links, config, labels ------------------------------------------------------------------


@click.group()
def link() -> None:
    """Links: bind a component's imports to a provider or another component."""


@link.command("put")
@click.argument("source_id")
@click.argument("target")
@click.option("--namespace", default="wasi", show_default=True)
@click.option("--package", default="keyvalue", show_default=True)
@click.option("--interface", "interfaces", multiple=True, help="Interface name (repeatable).")
@click.option("--name", default="default", show_default=True, help="Link name.")
@click.option("--config", "config_pairs", multiple=True, help="KEY=VALUE (repeatable).")
@nats_options
@output_option
def link_put(
    source_id: str,
    target: str,
    namespace: str,
    package: str,
    interfaces: tuple[str, ...],
    name: str,
    config_pairs: tuple[str, ...],
    output: str,
    lattice_name: str,
    **kwargs: Any,
) -> None:
    """Link SOURCE_ID's imports to TARGET (a provider such as keyvalue, or a component).

    Route HTTP to a component with SOURCE_ID http-server and --config path=/prefix.
    """
    nats = make_nats_options(kwargs, "lattice-cli")
    new = Link(
        source_id=source_id,
        target=target,
        namespace=namespace,
        package=package,
        interfaces=list(interfaces),
        name=name,
        config=_parse_pairs(config_pairs),
    )
    run(with_client(nats, lattice_name, lambda c: c.put_link(new)))
    emit(output, new.model_dump(mode="json"), lambda: click.echo(f"link {new.key} -> {target}"))


@link.command("del")
@click.argument("source_id")
@click.option("--namespace", default="wasi", show_default=True)
@click.option("--package", default="keyvalue", show_default=True)
@click.option("--name", default="default", show_default=True)
@nats_options
def link_del(
    source_id: str, namespace: str, package: str, name: str, lattice_name: str, **kwargs: Any
) -> None:
    """Delete a link."""
    nats = make_nats_options(kwargs, "lattice-cli")
    ref = LinkRef(source_id=source_id, namespace=namespace, package=package, name=name)
    if not run(with_client(nats, lattice_name, lambda c: c.delete_link(ref))):
        raise click.ClickException(f"no link {ref.key}")
    click.echo("deleted")


@link.command("get")
@click.argument("source_id", required=False)
@nats_options
@output_option
def link_get(source_id: str | None, output: str, lattice_name: str, **kwargs: Any) -> None:
    """List links (of SOURCE_ID when given)."""
    nats = make_nats_options(kwargs, "lattice-cli")
    links = run(with_client(nats, lattice_name, lambda c: c.links(source_id)))
    emit(
        output,
        [lk.model_dump(mode="json") for lk in links],
        lambda: print_table(
            ["SOURCE", "TARGET", "INTERFACE", "NAME", "CONFIG"],
            [
                [
                    lk.source_id,
                    lk.target,
                    f"{lk.namespace}:{lk.package}/{','.join(lk.interfaces)}",
                    lk.name,
                    ",".join(f"{k}={v}" for k, v in lk.config.items()),
                ]
                for lk in links
            ],
        ),
    )


@click.group()
def config() -> None:
    """Named configuration, stored on the lattice."""


@config.command("put")
@click.argument("name")
@click.argument("pairs", nargs=-1, required=True)
@nats_options
def config_put(name: str, pairs: tuple[str, ...], lattice_name: str, **kwargs: Any) -> None:
    """Store named config NAME with KEY=VALUE pairs."""
    nats = make_nats_options(kwargs, "lattice-cli")
    values = _parse_pairs(pairs)
    run(with_client(nats, lattice_name, lambda c: c.put_config(name, values)))
    click.echo(f"config {name}: {len(values)} value(s)")


@config.command("get")
@click.argument("name")
@nats_options
@output_option
def config_get(name: str, output: str, lattice_name: str, **kwargs: Any) -> None:
    """Show named config NAME."""
    nats = make_nats_options(kwargs, "lattice-cli")
    values = run(with_client(nats, lattice_name, lambda c: c.get_config(name)))
    if values is None:
        raise click.ClickException(f"no named config {name!r}")
    emit(output, values, lambda: print_table(["KEY", "VALUE"], sorted(map(list, values.items()))))


@config.command("del")
@click.argument("name")
@nats_options
def config_del(name: str, lattice_name: str, **kwargs: Any) -> None:
    """Delete named config NAME."""
    nats = make_nats_options(kwargs, "lattice-cli")
    if not run(with_client(nats, lattice_name, lambda c: c.delete_config(name))):
        raise click.ClickException(f"no named config {name!r}")
    click.echo("deleted")


@click.group()
def label() -> None:
    """Host labels."""


@label.command("put")
@click.argument("host_id")
@click.argument("pair")
@nats_options
def label_put(host_id: str, pair: str, lattice_name: str, **kwargs: Any) -> None:
    """Set label KEY=VALUE on HOST_ID."""
    nats = make_nats_options(kwargs, "lattice-cli")
    key, value = parse_label(pair)

    async def action(client: LatticeClient) -> Any:
        return await client.put_label(await resolve_host(client, host_id), key, value)

    run(with_client(nats, lattice_name, action))
    click.echo(f"label {key}={value} set")


@label.command("del")
@click.argument("host_id")
@click.argument("key")
@nats_options
def label_del(host_id: str, key: str, lattice_name: str, **kwargs: Any) -> None:
    """Remove label KEY from HOST_ID."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> Any:
        return await client.delete_label(await resolve_host(client, host_id), key)

    run(with_client(nats, lattice_name, action))
    click.echo(f"label {key} removed")


# -- events ---------------------------------------------------------------------------------


@click.command()
@click.option("--heartbeats/--no-heartbeats", default=False, help="Include heartbeats.")
@nats_options
@output_option
def events(heartbeats: bool, output: str, lattice_name: str, **kwargs: Any) -> None:
    """Tail lattice events live (Ctrl-C to stop)."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> None:
        async for event in client.events():
            if isinstance(event, HostHeartbeat) and not heartbeats:
                continue
            if output == "json":
                click.echo(json.dumps(event.model_dump(mode="json"), sort_keys=True))
            else:
                stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
                # Any event's payload, generically: its scalar fields as key=value.
                fields = event.data.model_dump(mode="json")
                detail = " ".join(
                    f"{k}={v}" for k, v in fields.items() if not isinstance(v, dict | list)
                )
                click.echo(f"{stamp} {event.type:<24} {event.source:<16} {detail}")

    with contextlib.suppress(KeyboardInterrupt):
        run(with_client(nats, lattice_name, action))


COMMANDS = (link, config, label, events)
