"""Shared pieces of the ``lattice`` CLI: connecting, output, KEY=VALUE flags, host lookup.

Commands raise; they do not print their own errors: ``cli.errors`` turns every
failure into one line at the top of the command.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from lattice import eventloop
from lattice.auth import auth_dir, creds_path
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.errors import LatticeError
from lattice.options import DEFAULT_NATS_URL, NatsFlags
from lattice.options import nats_options as nats_options
from lattice.pairs import BadPair, parse_pair
from lattice.redact import SafeFormatter, printable
from lattice.subjects import Subjects

T = TypeVar("T")
# What click.option returns: a function that adds a parameter to a command.
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
DEFAULT_STATE_DIR = Path(".state")
CLIENT_NAME = "lattice-cli"


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    # Redacted, one line per message: a host's log quotes sources, URLs and guests' output.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def default_nats_url() -> str:
    """Without --nats-url or $WASMLATTICE_NATS_URL: the server `lattice up` started here."""
    recorded = DEFAULT_STATE_DIR / "nats-url"
    if recorded.exists():
        return recorded.read_text().strip()
    return DEFAULT_NATS_URL


def connection(nats: NatsFlags, name: str = CLIENT_NAME, role: str | None = "admin") -> NatsOptions:
    """Options from the flags; without any credentials, ``role``'s from `lattice up`."""
    options = nats.options(name, default_url=default_nats_url())
    if role is None or options.user or options.token or options.credentials_file:
        return options
    creds = _local_creds(options.url, role, nats.lattice)
    return dataclasses.replace(options, credentials_file=creds) if creds else options


def _local_creds(url: str, role: str, lattice: str) -> str | None:
    """The creds `lattice up` issued here for ``role``, when talking to the server it runs."""
    recorded = DEFAULT_STATE_DIR / "nats-url"
    if not recorded.exists() or recorded.read_text().strip() != url:
        return None
    path = creds_path(auth_dir(DEFAULT_STATE_DIR), lattice, role, role)
    return str(path.resolve()) if path.exists() else None


output_option = click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True
)


def key_values(
    ctx: click.Context, param: click.Parameter, texts: tuple[str, ...] | str | None
) -> Any:
    """Click callback for KEY=VALUE flags and arguments: each becomes a (key, value) pair.

    A bad one is a usage error naming the flag. Use with ``metavar="KEY=VALUE"``.
    """
    if texts is None:
        return None
    try:
        if isinstance(texts, str):
            return parse_pair(texts)
        return tuple(parse_pair(text) for text in texts)
    except BadPair as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


def key_value_option(*decls: str, help: str) -> Decorator:
    """A repeatable KEY=VALUE flag; the command receives a tuple of (key, value) pairs."""
    return click.option(
        *decls,
        multiple=True,
        callback=key_values,
        metavar="KEY=VALUE",
        help=f"{help} (repeatable).",
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine (its errors reach ``cli.errors``)."""
    return eventloop.run(coro)


def with_client(nats: NatsFlags, action: Callable[[LatticeClient], Awaitable[T]]) -> T:
    """Connect, run ``action`` with a client of the lattice, close: one command's work."""

    async def session() -> T:
        nc = await connect(connection(nats), reconnect=False)
        try:
            return await action(LatticeClient(nc, Subjects(lattice=nats.lattice)))
        finally:
            await nc.close()

    return run(session())


# -- output ---------------------------------------------------------------------------
#
# Names, labels, reasons and errors printed here came from the lattice, where anyone
# who can publish may have put terminal escapes or newlines in them. Human output
# goes through ``echo`` / ``print_table`` / ``progress``, which escape them
# (``lattice.redact.printable``); JSON output is JSON-escaped, which is safe as it is.


def echo(text: str, err: bool = False) -> None:
    """Print one line of human output, control characters escaped."""
    click.echo(printable(text), err=err)


def emit(output: str, data: Any, table: Callable[[], None]) -> None:
    """JSON, or ``table()``, which prints through ``echo`` and ``print_table``."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        table()


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers] + [[printable(str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        click.echo(click.style(line, bold=True) if n == 0 else line)
    if not rows:
        click.echo("(none)")


def progress(message: str) -> None:
    click.echo(click.style(printable(message), dim=True), err=True)


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
