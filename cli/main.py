"""The ``lattice`` command: run hosts and manage the lattice (like wasmCloud's wash).

It lives in ``host`` because ``lattice up`` and ``lattice host`` run a host
daemon in this process; every other command only talks to the lattice
through ``lattice.client``. Output is a human table by default and
``--output json`` everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from cli.common import (
    DEFAULT_STATE_DIR,
    _setup_logging,
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
from cli.demo import deploy_demo
from cli.providers import get_providers, start_provider, stop_provider
from controller.service import Controller
from host.daemon import HostConfig, HostDaemon
from host.errors import HostError
from host.identity import parse_label
from host.runtime.loader import default_artifact_dirs
from lattice import tracing
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.errors import LatticeError
from lattice.messages import ScaleComponent
from lattice.natsd import NatsServer, port_is_open, process_alive
from lattice.subjects import Subjects

# -- the command group ------------------------------------------------------------


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
@click.version_option("0.1.0", prog_name="lattice")
def main(verbose: int) -> None:
    """wasmlattice: run WebAssembly components across a NATS lattice."""
    _setup_logging(verbose)


# -- up / down / host ----------------------------------------------------------------


def _on_signals(handler: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handler)


async def _serve(
    config: HostConfig,
    after_start: Callable[[HostDaemon], Awaitable[None]],
    with_controller: bool = False,
) -> None:
    """Run a host until Ctrl-C or SIGTERM: graceful shutdown once serving, cancel while starting."""
    main_task = asyncio.current_task()
    assert main_task is not None  # we run inside asyncio.run
    _on_signals(main_task.cancel)
    try:
        daemon = await HostDaemon.start(config)
    except asyncio.CancelledError:
        progress("interrupted while starting")
        return

    def on_signal() -> None:
        if daemon.serving:
            daemon.request_stop()
        else:
            main_task.cancel()

    _on_signals(on_signal)
    try:
        if with_controller:
            await _start_controller_beside(daemon)
        await after_start(daemon)
        await daemon.run()
    except asyncio.CancelledError:
        progress("interrupted while starting")
    finally:
        with contextlib.suppress(Exception):
            await daemon.shutdown()


async def _start_controller_beside(daemon: HostDaemon) -> None:
    """`lattice up` runs a controller in the same process, sharing the connection."""
    controller = Controller(daemon.nc, daemon.subjects)
    await controller.start()
    task = asyncio.create_task(controller.run(), name=f"controller-{controller.controller_id}")

    async def stop_controller() -> None:
        controller.request_stop()
        await task

    daemon.before_shutdown.append(stop_controller)


def host_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--http-port", default=8080, show_default=True),
        click.option("--http-host", default="127.0.0.1", show_default=True),
        click.option(
            "--state-dir",
            default=str(DEFAULT_STATE_DIR),
            show_default=True,
            type=click.Path(path_type=Path),
        ),
        click.option("--label", "labels", multiple=True, help="Host label KEY=VALUE (repeatable)."),
        click.option(
            "--host-id", default=None, help="Stable host id [default: kept in state dir]."
        ),
        click.option("--heartbeat", default=1.0, show_default=True, help="Heartbeat seconds."),
        click.option(
            "--artifact-dir",
            "artifact_dirs",
            multiple=True,
            type=click.Path(path_type=Path),
            help="Directory component files may be read from (repeatable) "
            "[default: ./build, ./examples and the state dir].",
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


def _host_config(kwargs: dict[str, Any], nats: NatsOptions) -> HostConfig:
    tracing.setup("wasmlattice-host", kwargs.pop("traces"), kwargs.pop("metrics"))
    for label in kwargs["labels"]:
        parse_label(label)  # fail early with a clear message
    return HostConfig(
        nats=nats,
        subjects=Subjects(lattice=kwargs["lattice_name"]),
        state_dir=kwargs["state_dir"],
        host_id=kwargs["host_id"],
        labels=list(kwargs["labels"]),
        http_host=kwargs["http_host"],
        http_port=kwargs["http_port"],
        heartbeat_s=kwargs["heartbeat"],
        artifact_dirs=list(kwargs["artifact_dirs"]) or None,
    )


@main.command()
@nats_options
@host_options
@click.option(
    "--nats-port",
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
def up(**kwargs: Any) -> None:
    """Start a local lattice: nats-server (unless --nats-url), a host and the demo app."""
    state_dir: Path = kwargs["state_dir"]
    server: NatsServer | None = None
    explicit_url = kwargs["nats_url"]
    try:
        if explicit_url is None:
            port = kwargs["nats_port"]
            port = 0 if port_is_open("127.0.0.1", port) else port
            progress("starting nats-server (JetStream) ...")
            server = NatsServer(state_dir / "nats", port=port).start()
            kwargs["nats_url"] = server.url
            (state_dir / "nats-url").write_text(server.url + "\n")
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "up.pid").write_text(f"{os.getpid()}\n")
        nats = make_nats_options(kwargs, "lattice-up")
        config = _host_config(kwargs, nats)
        components_dir: Path = kwargs["components_dir"]
        # The demo's components are read from --components-dir, wherever it is.
        config.artifact_dirs = [
            *(config.artifact_dirs or default_artifact_dirs(state_dir)),
            components_dir,
        ]

        async def after_start(daemon: HostDaemon) -> None:
            click.echo(
                f"lattice: NATS at {nats.url}; host {daemon.host_id} ({daemon.friendly_name})"
            )
            click.echo(f"more hosts: lattice host --nats-url {nats.url} --http-port 8081")
            if kwargs["demo"]:
                progress("starting the demo (a first start compiles it: a few seconds) ...")
                await deploy_demo(daemon, components_dir)
                base = daemon.http.url
                click.echo(f"demo: {base}/ answers hello; {base}/counter counts in JetStream KV")
            click.echo("press Ctrl-C to stop")

        run(_serve(config, after_start, with_controller=kwargs["controller"]))
    except (HostError, LatticeError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        for name in ("up.pid", "nats-url"):
            with contextlib.suppress(FileNotFoundError):
                (state_dir / name).unlink()
        if server is not None:
            server.stop()
            progress("nats-server stopped")


@main.command()
@click.option(
    "--state-dir",
    default=str(DEFAULT_STATE_DIR),
    show_default=True,
    type=click.Path(path_type=Path),
)
@click.option("--timeout", default=30.0, show_default=True)
def down(state_dir: Path, timeout: float) -> None:
    """Stop what `lattice up` started (its host, demo and nats-server)."""
    pid_file = state_dir / "up.pid"
    if not pid_file.exists():
        raise click.ClickException(
            f"nothing to stop: no {pid_file} (is `lattice up` running here?)"
        )
    pid = int(pid_file.read_text())
    try:
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


@main.command()
@nats_options
@host_options
def host(**kwargs: Any) -> None:
    """Run a host daemon that joins the lattice at --nats-url."""
    nats = make_nats_options(kwargs, "lattice-host")
    config = _host_config(kwargs, nats)

    async def after_start(daemon: HostDaemon) -> None:
        click.echo(
            f"host {daemon.host_id} ({daemon.friendly_name}) joined lattice "
            f"{daemon.subjects.lattice} at {nats.url}; HTTP on {daemon.http.url}"
        )

    run(_serve(config, after_start))


@main.command("controller")
@nats_options
@click.option(
    "--host-timeout",
    default=2.5,
    show_default=True,
    help="Seconds without a heartbeat before a host counts as gone.",
)
@click.option("--controller-id", default=None, help="Id in the leader lease [default: random].")
def controller_command(
    host_timeout: float, controller_id: str | None, lattice_name: str, **kwargs: Any
) -> None:
    """Run a controller: reconcile deployed specs (several may run; one acts)."""
    nats = make_nats_options(kwargs, "lattice-controller")
    run(_run_controller(nats, Subjects(lattice=lattice_name), host_timeout, controller_id))


async def _run_controller(
    nats: NatsOptions, subjects: Subjects, host_timeout: float, controller_id: str | None
) -> None:
    nc = await connect(nats)
    controller = Controller(nc, subjects, controller_id=controller_id, host_timeout_s=host_timeout)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, controller.request_stop)
    try:
        await controller.start()
        click.echo(f"controller {controller.controller_id} on lattice {subjects.lattice}")
        await controller.run()
    finally:
        await nc.drain()


# -- get -------------------------------------------------------------------------------


@main.group()
def get() -> None:
    """Show hosts and what runs on them."""


@get.command("hosts")
@nats_options
@output_option
def get_hosts(output: str, lattice_name: str, **kwargs: Any) -> None:
    """List every host on the lattice."""
    nats = make_nats_options(kwargs, "lattice-cli")
    hosts = run(with_client(nats, lattice_name, lambda c: c.hosts()))
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


@get.command("inventory")
@click.argument("host_id", required=False)
@nats_options
@output_option
def get_inventory(host_id: str | None, output: str, lattice_name: str, **kwargs: Any) -> None:
    """Components on HOST_ID (every host when omitted)."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> list[Any]:
        if host_id:
            return [await client.inventory(await resolve_host(client, host_id))]
        return await client.hosts()

    inventories = run(with_client(nats, lattice_name, action))
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


# -- components --------------------------------------------------------------------------


def _parse_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    return dict(parse_label(p) for p in pairs)


def _scale(
    output: str,
    lattice_name: str,
    host_wanted: str | None,
    request: ScaleComponent,
    kwargs: dict[str, Any],
) -> None:
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> dict[str, Any]:
        host_id = await resolve_host(client, host_wanted)
        progress(f"scaling {request.component_id} to {request.count} on host {host_id} ...")
        started = time.monotonic()
        data = await client.scale(host_id, request)
        return {"host_id": host_id, **data, "seconds": round(time.monotonic() - started, 3)}

    result = run(with_client(nats, lattice_name, action))
    emit(
        output,
        result,
        lambda: click.echo(
            f"{request.component_id}: {request.count} on {result['host_id']} "
            f"({result['seconds']:.2f} s)"
        ),
    )


def component_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--host", "host_wanted", default=None, help="Host id or name."),
        click.option("--max-concurrency", type=int, default=None),
        click.option("--deadline", type=float, default=10.0, show_default=True),
        click.option("--memory-mb", type=int, default=256, show_default=True),
        click.option("--sha256", default=None, help="Refuse the component unless it matches."),
        click.option("--config", "config_pairs", multiple=True, help="KEY=VALUE (repeatable)."),
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
        sha256=kw.pop("sha256"),
        max_concurrency=kw.pop("max_concurrency"),
        deadline_s=kw.pop("deadline"),
        memory_mb=kw.pop("memory_mb"),
        config=_parse_pairs(kw.pop("config_pairs")),
        config_names=list(kw.pop("config_names")),
    )


@main.group()
def start() -> None:
    """Start things on the lattice."""


@start.command("component")
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
    lattice_name: str,
    **kwargs: Any,
) -> None:
    """Start COMPONENT_ID from SOURCE (a path or http(s) URL) with one replica."""
    _scale(output, lattice_name, host_wanted, _request(component_id, source, 1, kwargs), kwargs)


@main.group()
def scale() -> None:
    """Scale things on the lattice."""


@scale.command("component")
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
    lattice_name: str,
    **kwargs: Any,
) -> None:
    """Run COUNT replicas of COMPONENT_ID (from SOURCE) on a host; 0 stops it."""
    _scale(output, lattice_name, host_wanted, _request(component_id, source, count, kwargs), kwargs)


@main.group()
def stop() -> None:
    """Stop things on the lattice."""


@stop.command("component")
@click.argument("component_id")
@click.option("--host", "host_wanted", default=None)
@nats_options
@output_option
def stop_component(
    component_id: str, host_wanted: str | None, output: str, lattice_name: str, **kwargs: Any
) -> None:
    """Stop COMPONENT_ID on a host."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> Any:
        host_id = await resolve_host(client, host_wanted)
        return {"host_id": host_id, **(await client.stop_component(host_id, component_id))}

    result = run(with_client(nats, lattice_name, action))
    emit(output, result, lambda: click.echo(f"stopped {component_id} on {result['host_id']}"))


@stop.command("host")
@click.argument("host_id")
@click.option("--drain-timeout", default=10.0, show_default=True)
@nats_options
@output_option
def stop_host(
    host_id: str, drain_timeout: float, output: str, lattice_name: str, **kwargs: Any
) -> None:
    """Stop a host gracefully (finish in-flight calls, then exit)."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> Any:
        resolved = await resolve_host(client, host_id)
        return await client.stop_host(resolved, drain_timeout)

    result = run(with_client(nats, lattice_name, action))
    emit(output, result, lambda: click.echo(f"host {result['host_id']} is stopping"))


from cli import apps as cli_apps  # noqa: E402 - the subcommand modules need `main`
from cli import artifacts as cli_artifacts  # noqa: E402
from cli import state as cli_lattice  # noqa: E402

for _command in (*cli_lattice.COMMANDS, *cli_apps.COMMANDS, *cli_artifacts.COMMANDS):
    main.add_command(_command)
for _command in cli_apps.APP_GET_COMMANDS:
    get.add_command(_command)
start.add_command(start_provider)
stop.add_command(stop_provider)
get.add_command(get_providers)


if __name__ == "__main__":
    main()
