"""The ``lattice`` command: run hosts and manage the lattice (like wasmCloud's wash).

It lives in ``host`` because ``lattice up`` and ``lattice host`` run a host
daemon in this process; every other command only talks to the lattice
through ``lattice.client``. Output is a human table by default and
``--output json`` everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from host.daemon import HostConfig, HostDaemon
from host.demo import deploy_demo
from host.errors import HostError
from host.identity import parse_label
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.errors import LatticeError
from lattice.messages import Link, LinkRef, ScaleComponent
from lattice.natsd import NatsServer, port_is_open
from lattice.subjects import Subjects

T = TypeVar("T")
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_STATE_DIR = Path(".state")


# -- shared options and helpers -------------------------------------------------


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )


def default_nats_url() -> str:
    """$WASMLATTICE_NATS_URL, else the server `lattice up` started here, else localhost."""
    env = os.environ.get("WASMLATTICE_NATS_URL")
    if env:
        return env
    recorded = DEFAULT_STATE_DIR / "nats-url"
    if recorded.exists():
        return recorded.read_text().strip()
    return DEFAULT_NATS_URL


def nats_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--nats-url and auth/TLS options, shared by every command that connects."""
    options = [
        click.option("--nats-url", default=None, help="NATS server URL [default: local]."),
        click.option("--nats-user", default=None, envvar="WASMLATTICE_NATS_USER"),
        click.option("--nats-password", default=None, envvar="WASMLATTICE_NATS_PASSWORD"),
        click.option("--nats-token", default=None, envvar="WASMLATTICE_NATS_TOKEN"),
        click.option("--nats-creds", default=None, help="NATS credentials file."),
        click.option("--tls-ca", default=None, help="CA file to verify the NATS server."),
        click.option("--tls-cert", default=None, help="Client certificate for NATS."),
        click.option("--tls-key", default=None, help="Client key for NATS."),
        click.option(
            "--lattice",
            "lattice_name",
            default="default",
            show_default=True,
            envvar="WASMLATTICE_LATTICE",
            help="Lattice name.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_nats_options(kwargs: dict[str, Any], name: str) -> NatsOptions:
    return NatsOptions(
        url=kwargs.pop("nats_url") or default_nats_url(),
        user=kwargs.pop("nats_user"),
        password=kwargs.pop("nats_password"),
        token=kwargs.pop("nats_token"),
        credentials_file=kwargs.pop("nats_creds"),
        tls_ca_file=kwargs.pop("tls_ca"),
        tls_cert_file=kwargs.pop("tls_cert"),
        tls_key_file=kwargs.pop("tls_key"),
        name=name,
    )


output_option = click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; project errors become one clear line, exit 1."""
    try:
        return asyncio.run(coro)
    except (HostError, LatticeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


async def with_client(
    options: NatsOptions, lattice_name: str, action: Callable[[LatticeClient], Awaitable[T]]
) -> T:
    nc = await connect(options, reconnect=False)
    try:
        return await action(LatticeClient(nc, Subjects(lattice=lattice_name)))
    finally:
        await nc.close()


def emit(output: str, data: Any, table: Callable[[], None]) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        table()


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        click.echo(click.style(line, bold=True) if n == 0 else line)
    if not rows:
        click.echo("(none)")


def progress(message: str) -> None:
    click.echo(click.style(message, dim=True), err=True)


# -- the command group ------------------------------------------------------------


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
@click.version_option("0.1.0", prog_name="lattice")
def main(verbose: int) -> None:
    """wasmlattice: run WebAssembly components across a NATS lattice."""
    _setup_logging(verbose)


# -- up / down / host ----------------------------------------------------------------


def _stop_on_signals(daemon: HostDaemon) -> None:
    """Ctrl-C or SIGTERM: graceful shutdown once serving, cancel while still starting."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        if daemon.serving:
            daemon.request_stop()
        elif main_task is not None:
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


async def _serve(daemon: HostDaemon, after_start: Callable[[], Awaitable[None]]) -> None:
    _stop_on_signals(daemon)
    try:
        await daemon.start()
        await after_start()
        await daemon.run()
    except asyncio.CancelledError:
        progress("interrupted while starting")
    finally:
        with contextlib.suppress(Exception):
            await daemon.shutdown()


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
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _host_config(kwargs: dict[str, Any], nats: NatsOptions) -> HostConfig:
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
        daemon = HostDaemon(config)
        components_dir: Path = kwargs["components_dir"]

        async def after_start() -> None:
            assert daemon.http is not None
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

        run(_serve(daemon, after_start))
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
        if not _process_alive(pid):
            click.echo("stopped")
            return
        time.sleep(0.1)
    raise click.ClickException(f"pid {pid} did not stop within {timeout} s")


def _process_alive(pid: int) -> bool:
    """True while ``pid`` runs; an exited but unreaped (zombie) process counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


@main.command()
@nats_options
@host_options
def host(**kwargs: Any) -> None:
    """Run a host daemon that joins the lattice at --nats-url."""
    nats = make_nats_options(kwargs, "lattice-host")
    daemon = HostDaemon(_host_config(kwargs, nats))

    async def after_start() -> None:
        assert daemon.http is not None
        click.echo(
            f"host {daemon.host_id} ({daemon.friendly_name}) joined lattice "
            f"{daemon.subjects.lattice} at {nats.url}; HTTP on {daemon.http.url}"
        )

    run(_serve(daemon, after_start))


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


async def resolve_host(client: LatticeClient, wanted: str | None) -> str:
    """A host id from an id, a friendly name, or nothing (when only one host runs)."""
    hosts = await client.hosts()
    if not hosts:
        raise LatticeError("no host answered: start one with `lattice up` or `lattice host`")
    if wanted is None:
        if len(hosts) == 1:
            return hosts[0].host_id
        names = ", ".join(f"{h.host_id} ({h.friendly_name})" for h in hosts)
        raise LatticeError(f"several hosts run; pick one with --host: {names}")
    for h in hosts:
        if wanted in (h.host_id, h.friendly_name):
            return h.host_id
    raise LatticeError(f"no host {wanted!r} on the lattice (see `lattice get hosts`)")


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


# -- links, config, labels ------------------------------------------------------------------


@main.group()
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
        raise click.ClickException(f"no link {source_id}/{namespace}:{package}/{name}")
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


@main.group()
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


@main.group()
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


@main.command()
@click.option("--heartbeats/--no-heartbeats", default=False, help="Include heartbeats.")
@nats_options
@output_option
def events(heartbeats: bool, output: str, lattice_name: str, **kwargs: Any) -> None:
    """Tail lattice events live (Ctrl-C to stop)."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> None:
        async for event in client.events():
            if event.type == "host_heartbeat" and not heartbeats:
                continue
            if output == "json":
                click.echo(json.dumps(event.model_dump(mode="json"), sort_keys=True))
            else:
                stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
                detail = " ".join(
                    f"{k}={v}" for k, v in event.data.items() if not isinstance(v, dict | list)
                )
                click.echo(f"{stamp} {event.type:<24} {event.source:<16} {detail}")

    with contextlib.suppress(KeyboardInterrupt):
        run(with_client(nats, lattice_name, action))


if __name__ == "__main__":
    main()
