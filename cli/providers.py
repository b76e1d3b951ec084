"""``lattice`` commands for out-of-process providers: start, stop, get.

``lattice start provider kv-redis keyvalue-redis --config redis_url=redis://... --host H``
asks host H to run the provider and supervise it (``host.supervisor``); components on
any host then link keyvalue to it with config ``provider=kv-redis``.
"""

from __future__ import annotations

from typing import Any

import click

from catalog import annotations as annotation
from catalog.kinds import PLACED_KINDS
from cli.common import (
    echo,
    emit,
    key_value_option,
    nats_options,
    output_option,
    print_table,
    progress,
    resolve_host,
    with_client,
)
from lattice.client import LatticeClient
from lattice.messages import StartProvider
from lattice.options import NatsFlags


@click.command("provider")
@click.argument("provider_id")
@click.argument("kind", type=click.Choice(sorted(PLACED_KINDS)))
@key_value_option("--config", "config_pairs", help="Config")
@click.option("--host", "host_wanted", default=None, help="Host id or name.")
@nats_options
@output_option
def start_provider(
    provider_id: str,
    kind: str,
    config_pairs: tuple[tuple[str, str], ...],
    host_wanted: str | None,
    output: str,
    nats: NatsFlags,
) -> None:
    """Run provider PROVIDER_ID of KIND on a host, which restarts it when it fails."""
    request = StartProvider.model_validate(
        {"provider_id": provider_id, "kind": kind, "config": dict(config_pairs)}
    )

    async def action(client: LatticeClient) -> dict[str, Any]:
        host_id = await resolve_host(client, host_wanted)
        progress(f"starting provider {provider_id} ({kind}) on host {host_id} ...")
        described = await client.start_provider(host_id, request)
        return {"host_id": host_id, **described.model_dump(mode="json")}

    result = with_client(nats, action)
    emit(
        output,
        result,
        lambda: echo(f"{provider_id}: pid {result['pid']} on {result['host_id']}"),
    )


@click.command("provider")
@click.argument("provider_id")
@click.option("--host", "host_wanted", default=None, help="Host id or name.")
@nats_options
@output_option
def stop_provider(provider_id: str, host_wanted: str | None, output: str, nats: NatsFlags) -> None:
    """Stop provider PROVIDER_ID on the host that runs it."""

    async def action(client: LatticeClient) -> dict[str, Any]:
        host_id = await resolve_host(client, host_wanted)
        described = await client.stop_provider(host_id, provider_id)
        return {"host_id": host_id, **described.model_dump(mode="json")}

    result = with_client(nats, action)
    emit(output, result, lambda: echo(f"stopped {provider_id} on {result['host_id']}"))


@click.command("providers")
@nats_options
@output_option
def get_providers(output: str, nats: NatsFlags) -> None:
    """Out-of-process providers, by the host that supervises them."""
    inventories = with_client(nats, lambda client: client.hosts())
    rows = [
        [
            inv.host_id,
            p.provider_id,
            p.kind,
            p.pid or "-",
            p.healthy,
            p.restarts,
            p.annotations.get(annotation.APP, "-"),
            # As the host reports it: secret-looking values masked (lattice.redact).
            ",".join(f"{k}={v}" for k, v in sorted(p.config.items())) or "-",
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
            ["HOST", "PROVIDER", "KIND", "PID", "HEALTHY", "RESTARTS", "APP", "CONFIG"], rows
        ),
    )


COMMANDS: tuple[click.Command, ...] = ()
VERBS = {"start": (start_provider,), "stop": (stop_provider,), "get": (get_providers,)}
