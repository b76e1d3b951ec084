"""The ``lattice`` command: the group that assembles one module per noun.

Top-level commands come from each module's ``COMMANDS``; the verb groups (``get``,
``start``, ``scale``, ``stop``) take each module's ``VERBS`` entries, so
``lattice get hosts`` lives in ``cli.hosts`` and ``lattice get apps`` in
``cli.apps``. Errors are handled once, by ``cli.errors.LatticeGroup``. Output is
a human table by default and ``--output json`` everywhere.
"""

from __future__ import annotations

import click

from cli import (
    apps,
    artifacts,
    components,
    config,
    controller,
    creds,
    events,
    hosts,
    links,
    providers,
    secrets,
)
from cli.common import setup_logging
from cli.errors import LatticeGroup

NOUNS = (
    hosts,
    controller,
    components,
    links,
    config,
    secrets,
    apps,
    providers,
    events,
    creds,
    artifacts,
)


@click.group(cls=LatticeGroup)
@click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
@click.version_option("0.1.0", prog_name="lattice")
def main(verbose: int) -> None:
    """wasmlattice: run WebAssembly components across a NATS lattice."""
    setup_logging(verbose)


@main.group()
def get() -> None:
    """Show hosts, apps, providers and what runs on them."""


@main.group()
def start() -> None:
    """Start things on the lattice."""


@main.group()
def scale() -> None:
    """Scale things on the lattice."""


@main.group()
def stop() -> None:
    """Stop things on the lattice."""


VERB_GROUPS = {"get": get, "start": start, "scale": scale, "stop": stop}

for _noun in NOUNS:
    for _command in _noun.COMMANDS:
        main.add_command(_command)
    for _verb, _commands in _noun.VERBS.items():
        for _command in _commands:
            VERB_GROUPS[_verb].add_command(_command)


if __name__ == "__main__":
    main()
