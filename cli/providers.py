"""``lattice`` commands for out-of-process providers: start, stop, get.

``lattice start provider kv-redis keyvalue-redis --config redis_url=redis://... --host H``
asks host H to run the provider and supervise it (``host.supervisor``); components on
any host then link keyvalue to it with config ``provider=kv-redis``.
"""

from __future__ import annotations

from typing import Any

import click
from pydantic import ValidationError

from catalog import annotations as annotation
from catalog.kinds import PLACED_KINDS
from cli.common import (
    emit,
    make_nats_options,
    nats_options,
    output_option,
    print_table,
    progress,
    resolve_host,
    run,
    with_client,
)
from lattice.client import LatticeClient
from lattice.messages import StartProvider


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"config {text!r} is not KEY=VALUE")
    return key.strip(), value


@click.command("provider")
@click.argument("provider_id")
@click.argument("kind", type=click.Choice(sorted(PLACED_KINDS)))
@click.option("--config", "config_pairs", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("--host", "host_wanted", default=None, help="Host id or name.")
@nats_options
@output_option
def start_provider(
    provider_id: str,
    kind: str,
    config_pairs: tuple[str, ...],
    host_wanted: str | None,
    output: str,
    lattice_name: str,
    **kwargs: Any,
) -> None:
    """Run provider PROVIDER_ID of KIND on a host, which restarts it when it fails."""
    try:
        config = dict(_pair(text) for text in config_pairs)
        request = StartProvider.model_validate(
            {"provider_id": provider_id, "kind": kind, "config": config}
        )
    except (ValidationError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from exc
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> dict[str, Any]:
        host_id = await resolve_host(client, host_wanted)
        progress(f"starting provider {provider_id} ({kind}) on host {host_id} ...")
        described = await client.start_provider(host_id, request)
        return {"host_id": host_id, **described.model_dump(mode="json")}

    result = run(with_client(nats, lattice_name, action))
    emit(
        output,
        result,
        lambda: click.echo(f"{provider_id}: pid {result['pid']} on {result['host_id']}"),
    )


@click.command("provider")
@click.argument("provider_id")
@click.option("--host", "host_wanted", default=None, help="Host id or name.")
@nats_options
@output_option
def stop_provider(
    provider_id: str, host_wanted: str | None, output: str, lattice_name: str, **kwargs: Any
) -> None:
    """Stop provider PROVIDER_ID on the host that runs it."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> dict[str, Any]:
        host_id = await resolve_host(client, host_wanted)
        described = await client.stop_provider(host_id, provider_id)
        return {"host_id": host_id, **described.model_dump(mode="json")}

    result = run(with_client(nats, lattice_name, action))
    emit(output, result, lambda: click.echo(f"stopped {provider_id} on {result['host_id']}"))


@click.command("providers")
@nats_options
@output_option
def get_providers(output: str, lattice_name: str, **kwargs: Any) -> None:
    """Out-of-process providers, by the host that supervises them."""
    nats = make_nats_options(kwargs, "lattice-cli")
    inventories = run(with_client(nats, lattice_name, lambda client: client.hosts()))
    rows = [
        [
            inv.host_id,
            p.provider_id,
            p.kind,
            p.pid or "-",
            p.healthy,
            p.restarts,
            p.annotations.get(annotation.APP, "-"),
        ]
        for inv in inventories
        for p in inv.providers
    ]
    emit(
        output,
        [
            {"host_id": inv.host_id, **p.model_dump(mode="json")}
            for inv in inventories
            for p in inv.providers
        ],
        lambda: print_table(
            ["HOST", "PROVIDER", "KIND", "PID", "HEALTHY", "RESTARTS", "APP"], rows
        ),
    )
