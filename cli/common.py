"""Shared pieces of the ``lattice`` CLI: NATS options, output, errors, host lookup."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from host.errors import HostError
from lattice.auth import auth_dir, creds_path
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.errors import LatticeError
from lattice.subjects import DEFAULT_LATTICE, Subjects

T = TypeVar("T")
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_STATE_DIR = Path(".state")


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
        click.option(
            "--nats-creds",
            default=None,
            envvar="WASMLATTICE_NATS_CREDS",
            help="NATS credentials file [default: lattice up's, for its server].",
        ),
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


def make_nats_options(kwargs: dict[str, Any], name: str, role: str | None = "admin") -> NatsOptions:
    """Options from the flags; without any credentials, ``role``'s from `lattice up`."""
    explicit_url = kwargs.pop("nats_url")
    url = explicit_url or default_nats_url()
    user, password, token = (
        kwargs.pop("nats_user"),
        kwargs.pop("nats_password"),
        kwargs.pop("nats_token"),
    )
    creds = kwargs.pop("nats_creds")
    if not (user or token or creds) and role is not None:
        creds = _local_creds(url, role)
    return NatsOptions(
        url=url,
        user=user,
        password=password,
        token=token,
        credentials_file=creds,
        tls_ca_file=kwargs.pop("tls_ca"),
        tls_cert_file=kwargs.pop("tls_cert"),
        tls_key_file=kwargs.pop("tls_key"),
        name=name,
    )


def _local_creds(url: str, role: str) -> str | None:
    """The creds `lattice up` issued here for ``role``, when talking to the server it runs."""
    recorded = DEFAULT_STATE_DIR / "nats-url"
    if not recorded.exists() or recorded.read_text().strip() != url:
        return None
    context = click.get_current_context(silent=True)
    lattice = str((context.params if context else {}).get("lattice_name") or DEFAULT_LATTICE)
    path = creds_path(auth_dir(DEFAULT_STATE_DIR), lattice, role, role)
    return str(path.resolve()) if path.exists() else None


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
