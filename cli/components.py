"""``lattice`` commands for components: start, scale and stop one on a host.

The source (a path or an http(s) URL) is read by the host, so a missing file is
the host's error, reported here as one line. The values' bounds are the
request's (``ScaleComponent``): an out-of-range ``--count`` is refused before
anything is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from cli.common import (
    Decorator,
    echo,
    emit,
    key_value_option,
    nats_options,
    output_option,
    progress,
    resolve_host,
    with_client,
)
from lattice.client import LatticeClient
from lattice.messages import ScaleComponent
from lattice.options import NatsFlags


def component_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Decorator] = [
        click.option("--host", "host_wanted", default=None, help="Host id or name."),
        click.option("--max-concurrency", type=int, default=None),
        click.option("--deadline", type=float, default=10.0, show_default=True),
        click.option("--memory-mb", type=int, default=256, show_default=True),
        click.option("--sha256", default=None, help="Refuse the component unless it matches."),
        key_value_option("--config", "config_pairs", help="Config"),
        click.option("--config-name", "config_names", multiple=True, help="Named config."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _request(component_id: str, source: str, count: int, kw: dict[str, Any]) -> ScaleComponent:
    return ScaleComponent(
        component_id=component_id,
        source=source,
        count=count,
        sha256=kw["sha256"],
        max_concurrency=kw["max_concurrency"],
        deadline_s=kw["deadline"],
        memory_mb=kw["memory_mb"],
        config=dict(kw["config_pairs"]),
        config_names=list(kw["config_names"]),
    )


def _scale(request: ScaleComponent, host_wanted: str | None, output: str, nats: NatsFlags) -> None:
    async def action(client: LatticeClient) -> dict[str, Any]:
        host_id = await resolve_host(client, host_wanted)
        progress(f"scaling {request.component_id} to {request.count} on host {host_id} ...")
        started = time.monotonic()
        data = await client.scale(host_id, request)
        return {"host_id": host_id, **data, "seconds": round(time.monotonic() - started, 3)}

    result = with_client(nats, action)
    emit(
        output,
        result,
        lambda: echo(
            f"{request.component_id}: {request.count} on {result['host_id']} "
            f"({result['seconds']:.2f} s)"
        ),
    )


@click.command("component")
@click.argument("component_id")
@click.argument("source")
@component_options
@nats_options
@output_option
def start_component(
    component_id: str,
    source: str,
    host_wanted: str | None,
    output: str,
    nats: NatsFlags,
    **kwargs: Any,
) -> None:
    """Start COMPONENT_ID from SOURCE (a path or http(s) URL) with one replica."""
    _scale(_request(component_id, source, 1, kwargs), host_wanted, output, nats)


@click.command("component")
@click.argument("component_id")
@click.argument("source")
@click.option("--count", type=int, default=1, show_default=True, help="Replicas on the host.")
@component_options
@nats_options
@output_option
def scale_component(
    component_id: str,
    source: str,
    count: int,
    host_wanted: str | None,
    output: str,
    nats: NatsFlags,
    **kwargs: Any,
) -> None:
    """Run COUNT replicas of COMPONENT_ID (from SOURCE) on a host; 0 stops it."""
    _scale(_request(component_id, source, count, kwargs), host_wanted, output, nats)


@click.command("component")
@click.argument("component_id")
@click.option("--host", "host_wanted", default=None, help="Host id or name.")
@nats_options
@output_option
def stop_component(
    component_id: str, host_wanted: str | None, output: str, nats: NatsFlags
) -> None:
    """Stop COMPONENT_ID on a host."""

    async def action(client: LatticeClient) -> Any:
        host_id = await resolve_host(client, host_wanted)
        return {"host_id": host_id, **(await client.stop_component(host_id, component_id))}

    result = with_client(nats, action)
    emit(output, result, lambda: echo(f"stopped {component_id} on {result['host_id']}"))


COMMANDS: tuple[click.Command, ...] = ()
VERBS = {"start": (start_component,), "scale": (scale_component,), "stop": (stop_component,)}
