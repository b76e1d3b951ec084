"""``lattice controller``: run a controller (``controller.service``) in this process."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import connection, nats_options, run
from controller.service import Controller
from lattice.connection import NatsOptions, close_connection, connect
from lattice.options import NatsFlags
from lattice.process import stop_on_signals
from lattice.secrets import SealingKey
from lattice.subjects import Subjects


@click.command("controller")
@nats_options
@click.option(
    "--host-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=2.5,
    show_default=True,
    help="Seconds without a heartbeat before a host counts as gone.",
)
@click.option("--controller-id", default=None, help="Id in the leader lease [default: random].")
@click.option(
    "--secrets-key",
    type=click.Path(path_type=Path),
    default=None,
    help="The lattice's secrets key (made if missing, 0600); without it, no secrets.",
)
def controller_command(
    host_timeout: float, controller_id: str | None, secrets_key: Path | None, nats: NatsFlags
) -> None:
    """Run a controller: reconcile deployed specs (several may run; one acts)."""
    options = connection(nats, "lattice-controller", role="controller")
    key = SealingKey.load_or_create(secrets_key) if secrets_key else None
    run(_run_controller(options, Subjects(lattice=nats.lattice), host_timeout, controller_id, key))


async def _run_controller(
    nats: NatsOptions,
    subjects: Subjects,
    host_timeout: float,
    controller_id: str | None,
    key: SealingKey | None = None,
) -> None:
    nc = await connect(nats)
    controller = Controller(
        nc, subjects, controller_id=controller_id, host_timeout_s=host_timeout, secrets_key=key
    )
    stop_on_signals(controller.request_stop)
    try:
        await controller.start()
        click.echo(f"controller {controller.controller_id} on lattice {subjects.lattice}")
        await controller.run()
    finally:
        await close_connection(nc)


COMMANDS = (controller_command,)
VERBS: dict[str, tuple[click.Command, ...]] = {}
