"""``lattice link``: bind a component's imports to a provider or another component.

Links live in JetStream (``lattice.state``); every host applies them as they change.
"""

from __future__ import annotations

import click

from cli.common import emit, key_value_option, nats_options, output_option, print_table, with_client
from lattice.messages import Link, LinkRef
from lattice.options import NatsFlags


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
@key_value_option("--config", "config_pairs", help="Config")
@nats_options
@output_option
def link_put(
    source_id: str,
    target: str,
    namespace: str,
    package: str,
    interfaces: tuple[str, ...],
    name: str,
    config_pairs: tuple[tuple[str, str], ...],
    output: str,
    nats: NatsFlags,
) -> None:
    """Link SOURCE_ID's imports to TARGET (a provider such as keyvalue, or a component).

    Route HTTP to a component with SOURCE_ID http-server and --config path=/prefix.
    """
    new = Link(
        source_id=source_id,
        target=target,
        namespace=namespace,
        package=package,
        interfaces=list(interfaces),
        name=name,
        config=dict(config_pairs),
    )
    with_client(nats, lambda c: c.put_link(new))
    emit(output, new.model_dump(mode="json"), lambda: click.echo(f"link {new.key} -> {target}"))


@link.command("del")
@click.argument("source_id")
@click.option("--namespace", default="wasi", show_default=True)
@click.option("--package", default="keyvalue", show_default=True)
@click.option("--name", default="default", show_default=True)
@nats_options
def link_del(source_id: str, namespace: str, package: str, name: str, nats: NatsFlags) -> None:
    """Delete a link."""
    ref = LinkRef(source_id=source_id, namespace=namespace, package=package, name=name)
    if not with_client(nats, lambda c: c.delete_link(ref)):
        raise click.ClickException(f"no link {ref.key}")
    click.echo("deleted")


@link.command("get")
@click.argument("source_id", required=False)
@nats_options
@output_option
def link_get(source_id: str | None, output: str, nats: NatsFlags) -> None:
    """List links (of SOURCE_ID when given)."""
    links = with_client(nats, lambda c: c.links(source_id))
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


COMMANDS = (link,)
VERBS: dict[str, tuple[click.Command, ...]] = {}
