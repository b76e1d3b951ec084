"""The ``lattice`` command: run hosts and manage the lattice (like wasmCloud's wash).

It lives in ``host`` because ``lattice up`` and ``lattice host`` run a host
daemon in this process; commands that only talk to the lattice use
``lattice.client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import click

from host.daemon import HostConfig, HostDaemon
from host.demo import demo_components
from host.errors import HostError
from lattice.connection import NatsOptions
from lattice.errors import LatticeError
from lattice.natsd import NatsServer


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * verbose if verbose else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
def main(verbose: int) -> None:
    """wasmlattice: run WebAssembly components across a NATS lattice."""
    _setup_logging(verbose)


def _stop_on_signals(daemon: HostDaemon) -> None:
    """Ctrl-C or SIGTERM: graceful shutdown once serving, cancel while still starting."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        if daemon.serving:
            asyncio.ensure_future(daemon.shutdown())
        elif main_task is not None:
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


@main.command()
@click.option("--nats-url", help="Use this NATS server instead of starting one.")
@click.option("--nats-port", default=0, show_default="a free port", help="Port for the local NATS.")
@click.option("--http-port", default=8080, show_default=True)
@click.option("--http-host", default="127.0.0.1", show_default=True)
@click.option("--state-dir", default=".state", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--components-dir",
    default="build/components",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the demo components were built.",
)
@click.option("--demo/--no-demo", default=True, help="Run the demo app.")
def up(
    nats_url: str | None,
    nats_port: int,
    http_port: int,
    http_host: str,
    state_dir: Path,
    components_dir: Path,
    demo: bool,
) -> None:
    """Start a local lattice: nats-server (unless --nats-url), a host and the demo app."""
    server: NatsServer | None = None
    try:
        if nats_url is None:
            click.echo("starting nats-server (JetStream) ...", err=True)
            server = NatsServer(state_dir / "nats", port=nats_port).start()
            nats_url = server.url
        config = HostConfig(
            nats=NatsOptions(url=nats_url, name="lattice-up"),
            state_dir=state_dir,
            http_host=http_host,
            http_port=http_port,
        )
        asyncio.run(_up(config, components_dir if demo else None))
    except (HostError, LatticeError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if server is not None:
            server.stop()
            click.echo("nats-server stopped", err=True)


async def _up(config: HostConfig, components_dir: Path | None) -> None:
    daemon = HostDaemon(config)
    _stop_on_signals(daemon)
    try:
        await daemon.start()
        assert daemon.http is not None
        click.echo(f"lattice: NATS at {config.nats.url}", err=True)
        if components_dir is not None:
            click.echo("starting demo components (first start compiles them: a few seconds)", err=True)
            for spec, routes in demo_components(components_dir):
                await daemon.start_component(spec, routes)
            base = daemon.http.url
            click.echo(f"demo: {base}/ answers hello; {base}/counter counts in JetStream KV")
        click.echo("press Ctrl-C to stop", err=True)
        await daemon.run()
    except asyncio.CancelledError:
        click.echo("interrupted while starting", err=True)
    finally:
        with contextlib.suppress(Exception):
            await daemon.shutdown()


if __name__ == "__main__":
    main()
