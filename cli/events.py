"""``lattice events``: tail the lattice's events (hosts, components, providers) live.

Anyone allowed to publish events chose their text: the table form prints each
event as one line with control characters escaped (``cli.common.echo``); the
JSON form is JSON-escaped.
"""

from __future__ import annotations

import contextlib
import json
import time

import click

from cli.common import echo, nats_options, output_option, with_client
from lattice.client import LatticeClient
from lattice.events import HostHeartbeat
from lattice.options import NatsFlags


@click.command()
@click.option("--heartbeats/--no-heartbeats", default=False, help="Include heartbeats.")
@nats_options
@output_option
def events(heartbeats: bool, output: str, nats: NatsFlags) -> None:
    """Tail lattice events live (Ctrl-C to stop)."""

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
                echo(f"{stamp} {event.type:<24} {event.source:<16} {detail}")

    # Ctrl-C is how a tail ends: not an error.
    with contextlib.suppress(KeyboardInterrupt):
        with_client(nats, action)


COMMANDS = (events,)
VERBS: dict[str, tuple[click.Command, ...]] = {}
