"""``lattice`` commands for hosts: up, down, host, get hosts/inventory, stop host, drain, label.

``lattice up`` and ``lattice host`` run a host daemon (``host.daemon``) in this
process; the other commands only talk to hosts through ``lattice.client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from catalog import annotations as annotation
from cli.common import (
    DEFAULT_STATE_DIR,
    Decorator,
    connection,
    echo,
    emit,
    key_value_option,
    key_values,
    nats_options,
    output_option,
    print_table,
    progress,
    resolve_host,
    run,
    with_client,
)
from cli.creds import LocalAuth, ensure_lattice_buckets, local_auth, refuse_client_auth_flags
from cli.demo import deploy_demo
from controller.service import Controller
from host.daemon import HostConfig, HostDaemon
from host.identity import stable_host_id
from host.runtime.loader import default_artifact_dirs
from lattice import tracing
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, close_connection, connect
from lattice.messages import HostInventory
from lattice.natsd import NatsServer, port_is_open
from lattice.options import URL_PARAM, NatsFlags
from lattice.process import process_alive, stop_on_signals
from lattice.redact import redacted
from lattice.secrets import SealingKey
from lattice.subjects import Subjects

# -- running a host here ----------------------------------------------------------------


async def _serve(
    config: HostConfig,
    after_start: Callable[[HostDaemon], Awaitable[None]],
    with_controller: bool = False,
    controller_nats: NatsOptions | None = None,
) -> None:
    """Start a daemon and serve until Ctrl-C or SIGTERM, then shut down in order."""
    main_task = asyncio.current_task()
    assert main_task is not None  # we run inside asyncio.run

    def cancel_start() -> None:
        main_task.cancel()

    stop_on_signals(cancel_start)
    try:
        daemon = await HostDaemon.start(config)
    except asyncio.CancelledError:
        progress("interrupted while starting")
        return

    def on_signal() -> None:
        # Graceful once serving; while still starting there is nothing to drain.
        if daemon.serving:
            daemon.request_stop()
        else:
            main_task.cancel()

    stop_on_signals(on_signal)
    try:
        if with_controller:
            await _start_controller_beside(daemon, controller_nats)
        await after_start(daemon)
        await daemon.run()
    except asyncio.CancelledError:
        progress("interrupted while starting")
    finally:
        with contextlib.suppress(Exception):
            await daemon.shutdown()


async def _start_controller_beside(daemon: HostDaemon, nats: NatsOptions | None) -> None:
    """`lattice up` runs a controller in the same process: on its own connection with
    controller creds (``nats``), else sharing the host's."""
    nc = await connect(nats) if nats is not None else daemon.nc
    # The lattice's secrets key lives in the state dir, beside the NATS credentials.
    key = SealingKey.load_or_create(daemon.config.state_dir / "secrets.key")
    controller = Controller(nc, daemon.subjects, secrets_key=key)
    await controller.start()
    task = asyncio.create_task(controller.run(), name=f"controller-{controller.controller_id}")

    async def stop_controller() -> None:
        controller.request_stop()
        await task
        if nc is not daemon.nc:
            await close_connection(nc)

    daemon.before_shutdown.append(stop_controller)


def host_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Decorator] = [
        click.option("--http-port", type=click.IntRange(0, 65535), default=8080, show_default=True),
        click.option("--http-host", default="127.0.0.1", show_default=True),
        click.option(
            "--state-dir",
            default=str(DEFAULT_STATE_DIR),
            show_default=True,
            type=click.Path(path_type=Path),
        ),
        key_value_option("--label", "labels", help="Host label"),
        click.option(
            "--host-id", default=None, help="Stable host id [default: kept in state dir]."
        ),
        click.option(
            "--heartbeat",
            type=click.FloatRange(min=0, min_open=True),
            default=1.0,
            show_default=True,
            help="Heartbeat seconds.",
        ),
        click.option("--policy", type=click.Path(path_type=Path), help="Policy file (YAML/JSON)."),
        click.option(
            "--policy-subject",
            is_flag=False,
            flag_value="",
            metavar="[SUBJECT]",
            help="Ask a policy service on SUBJECT [default: the lattice's policy subject].",
        ),
        click.option(
            "--artifact-dir",
            "artifact_dirs",
            multiple=True,
            type=click.Path(path_type=Path),
            help="Directory component files may be read from (repeatable) "
            "[default: ./build, ./examples and the state dir].",
        ),
        click.option(
            "--data-plane-processes",
            type=click.IntRange(min=0),
            default=os.cpu_count() or 1,
            show_default="one per core",
            envvar="WASMLATTICE_DATA_PLANE_PROCESSES",
            help="Processes serving the HTTP port, this one included (0 or 1: this one only).",
        ),
        click.option(
            "--traces",
            default=None,
            envvar="WASMLATTICE_TRACES",
            help="Trace exporter: console, otlp or file:PATH.",
        ),
        click.option(
            "--metrics",
            default=None,
            envvar="WASMLATTICE_METRICS",
            help="Metrics exporter: console or otlp.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _host_config(kwargs: dict[str, Any], nats: NatsOptions, lattice: str) -> HostConfig:
    tracing.setup("wasmlattice-host", kwargs["traces"], kwargs["metrics"])
    return HostConfig(
        nats=nats,
        subjects=Subjects(lattice=lattice),
        state_dir=kwargs["state_dir"],
        host_id=kwargs["host_id"],
        labels=[f"{key}={value}" for key, value in kwargs["labels"]],
        http_host=kwargs["http_host"],
        http_port=kwargs["http_port"],
        heartbeat_s=kwargs["heartbeat"],
        artifact_dirs=list(kwargs["artifact_dirs"]) or None,
        policy_file=kwargs["policy"],
        policy_subject=kwargs["policy_subject"],
        data_plane_processes=kwargs["data_plane_processes"],
    )


@click.command()
@nats_options
@host_options
@click.option(
    "--nats-port",
    type=click.IntRange(0, 65535),
    default=4222,
    show_default=True,
    help="Port for the local NATS (a free one if taken).",
)
@click.option(
    "--components-dir",
    default="build/components",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the demo components were built.",
)
@click.option("--demo/--no-demo", default=True, help="Run the demo app.")
@click.option("--controller/--no-controller", default=True, help="Run a controller too.")
def up(nats: NatsFlags, **kwargs: Any) -> None:
    """Start a local lattice: nats-server (unless --nats-url), a host and the demo app."""
    state_dir: Path = kwargs["state_dir"]
    server: NatsServer | None = None
    auth: LocalAuth | None = None
    # Only the flag names a server to join: a $WASMLATTICE_NATS_URL left in the shell
    # (for the other commands) does not stop `up` from starting its own.
    source = click.get_current_context().get_parameter_source(URL_PARAM)
    joins = source is ParameterSource.COMMANDLINE
    try:
        if not joins:
            refuse_client_auth_flags(nats)
            port = kwargs["nats_port"]
            port = 0 if port_is_open("127.0.0.1", port) else port
            kwargs["host_id"] = stable_host_id(
                state_dir, kwargs["host_id"], str(kwargs["http_port"])
            )
            auth = local_auth(state_dir, nats.lattice, kwargs["host_id"])
            progress("starting nats-server (JetStream, per-role creds) ...")
            server = NatsServer(state_dir / "nats", port=port, extra_args=auth.server_args).start()
            nats = dataclasses.replace(
                nats.with_url(server.url), credentials_file=str(auth.creds["host"])
            )
            (state_dir / "nats-url").write_text(server.url + "\n")
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "up.pid").write_text(f"{os.getpid()}\n")
        options = connection(nats, "lattice-up", role=None)
        config = _host_config(kwargs, options, nats.lattice)
        admin = auth.options("admin", options) if auth else None
        if admin is not None:
            run(ensure_lattice_buckets(admin, config.subjects))
        components_dir: Path = kwargs["components_dir"]
        # The demo's components are read from --components-dir, wherever it is.
        config.artifact_dirs = [
            *(config.artifact_dirs or default_artifact_dirs(state_dir)),
            components_dir,
        ]

        async def after_start(daemon: HostDaemon) -> None:
            url = redacted(options.url)
            echo(f"lattice: NATS at {url}; host {daemon.host_id} ({daemon.friendly_name})")
            more = f"more hosts: lattice host --nats-url {url} --http-port 8081"
            if auth is not None:
                more += f" --nats-creds $(lattice creds host NAME --state-dir {state_dir})"
            echo(more)
            if kwargs["demo"]:
                progress("starting the demo (a first start compiles it: a few seconds) ...")
                await deploy_demo(daemon, components_dir, admin)
                base = daemon.http.url
                click.echo(f"demo: {base}/ answers hello; {base}/counter counts in JetStream KV")
            click.echo("press Ctrl-C to stop")

        controller_nats = auth.options("controller", options) if auth else None
        run(_serve(config, after_start, kwargs["controller"], controller_nats))
    finally:
        for name in ("up.pid", "nats-url"):
            with contextlib.suppress(FileNotFoundError):
                (state_dir / name).unlink()
        if server is not None:
            server.stop()
            progress("nats-server stopped")


@click.command()
@click.option(
    "--state-dir",
    default=str(DEFAULT_STATE_DIR),
    show_default=True,
    type=click.Path(path_type=Path),
)
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True)
def down(state_dir: Path, timeout: float) -> None:
    """Stop what `lattice up` started (its host, demo and nats-server)."""
    pid_file = state_dir / "up.pid"
    if not pid_file.exists():
        raise click.ClickException(
            f"nothing to stop: no {pid_file} (is `lattice up` running here?)"
        )
    pid = int(pid_file.read_text())
    try:
        # Not lattice.process.stop_process: `lattice up` is no child of ours, and its
        # own shutdown (drain, then the nats-server) may take longer than a kill allows.
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink()
        raise click.ClickException(f"`lattice up` (pid {pid}) is not running") from None
    progress(f"stopping lattice up (pid {pid}) ...")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            click.echo("stopped")
            return
        time.sleep(0.1)
    raise click.ClickException(f"pid {pid} did not stop within {timeout} s")


@click.command()
@nats_options
@host_options
def host(nats: NatsFlags, **kwargs: Any) -> None:
    """Run a host daemon that joins the lattice at --nats-url."""
    options = connection(nats, "lattice-host", role=None)
    config = _host_config(kwargs, options, nats.lattice)

    async def after_start(daemon: HostDaemon) -> None:
        echo(
            f"host {daemon.host_id} ({daemon.friendly_name}) joined lattice "
            f"{daemon.subjects.lattice} at {redacted(options.url)}; HTTP on {daemon.http.url}"
        )

    run(_serve(config, after_start))


# -- looking at hosts -------------------------------------------------------------------


@click.command("hosts")
@nats_options
@output_option
def get_hosts(output: str, nats: NatsFlags) -> None:
    """List every host on the lattice."""
    hosts = with_client(nats, lambda c: c.hosts())
    emit(
        output,
        [h.model_dump(mode="json") for h in hosts],
        lambda: print_table(
            ["HOST ID", "NAME", "LABELS", "COMPONENTS", "HTTP", "UPTIME"],
            [
                [
                    h.host_id,
                    h.friendly_name,
                    ",".join(f"{k}={v}" for k, v in sorted(h.labels.items()) if k != "hostname"),
                    len(h.components),
                    h.http_url or "-",
                    f"{h.uptime_s:.0f}s",
                ]
                for h in hosts
            ],
        ),
    )


@click.command("inventory")
@click.argument("host_id", required=False)
@nats_options
@output_option
def get_inventory(host_id: str | None, output: str, nats: NatsFlags) -> None:
    """Components on HOST_ID (every host when omitted)."""

    async def action(client: LatticeClient) -> list[HostInventory]:
        if host_id:
            return [await client.inventory(await resolve_host(client, host_id))]
        return await client.hosts()

    inventories = with_client(nats, action)
    rows = [
        [
            inv.host_id,
            c.component_id,
            c.count,
            c.max_concurrency,
            c.invocations,
            c.failures,
            c.source,
        ]
        for inv in inventories
        for c in inv.components
    ]
    emit(
        output,
        [i.model_dump(mode="json") for i in inventories],
        lambda: print_table(
            ["HOST", "COMPONENT", "COUNT", "MAX CONC", "CALLS", "FAILED", "SOURCE"], rows
        ),
    )


# -- stopping and draining hosts --------------------------------------------------------


@click.command("host")
@click.argument("host_id")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=10.0, show_default=True)
@nats_options
@output_option
def stop_host(host_id: str, drain_timeout: float, output: str, nats: NatsFlags) -> None:
    """Stop a host gracefully (finish in-flight calls, then exit)."""

    async def action(client: LatticeClient) -> Any:
        resolved = await resolve_host(client, host_id)
        return await client.stop_host(resolved, drain_timeout)

    result = with_client(nats, action)
    emit(output, result, lambda: echo(f"host {result['host_id']} is stopping"))


@click.command()
@click.argument("host_id")
@click.option("--stop/--no-stop", default=True, help="Stop the host once it is empty.")
@click.option("--timeout", type=click.FloatRange(min=0), default=120.0, show_default=True)
@nats_options
def drain(host_id: str, stop: bool, timeout: float, nats: NatsFlags) -> None:
    """Move HOST_ID's replicas elsewhere (the controller does), then stop it."""

    async def action(client: LatticeClient) -> str:
        resolved = await resolve_host(client, host_id)
        await client.drain_host(resolved)
        progress(f"draining {resolved}: waiting for its replicas to move ...")
        deadline = time.monotonic() + timeout
        while _still_placed(await client.inventory(resolved)):
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"{resolved} still runs components or placed providers after {timeout} s"
                )
            await asyncio.sleep(0.2)
        if stop:
            await client.stop_host(resolved)
        return resolved

    resolved = with_client(nats, action)
    echo(f"{resolved} drained" + (" and stopping" if stop else ""))


def _still_placed(inventory: HostInventory) -> bool:
    """Replicas the controller has yet to move: components, and providers a spec placed
    (a provider started by hand stays: no controller would move it)."""
    return bool(inventory.components) or any(
        p.annotations.get(annotation.APP) for p in inventory.providers
    )


# -- labels -----------------------------------------------------------------------------


@click.group()
def label() -> None:
    """Host labels."""


@label.command("put")
@click.argument("host_id")
@click.argument("pair", callback=key_values)
@nats_options
def label_put(host_id: str, pair: tuple[str, str], nats: NatsFlags) -> None:
    """Set label KEY=VALUE on HOST_ID."""
    key, value = pair

    async def action(client: LatticeClient) -> Any:
        return await client.put_label(await resolve_host(client, host_id), key, value)

    with_client(nats, action)
    echo(f"label {key}={value} set")


@label.command("del")
@click.argument("host_id")
@click.argument("key")
@nats_options
def label_del(host_id: str, key: str, nats: NatsFlags) -> None:
    """Remove label KEY from HOST_ID."""

    async def action(client: LatticeClient) -> Any:
        return await client.delete_label(await resolve_host(client, host_id), key)

    with_client(nats, action)
    echo(f"label {key} removed")


COMMANDS = (up, down, host, drain, label)
VERBS = {"get": (get_hosts, get_inventory), "stop": (stop_host,)}
