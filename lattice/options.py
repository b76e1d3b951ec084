"""The command-line flags of a NATS connection, defined once.

Both command lines that connect take them through ``nats_options``: the
``lattice`` CLI and the provider process (``python -m providers.run``). A host
hands its own connection on to the provider processes it starts with
``command_line``: the same flags, with the secrets (and a URL carrying one) in the
environment, since every user of a machine can read a command line.

=================  ==========================  ==================
flag               environment variable        NatsOptions field
=================  ==========================  ==================
--nats-url         WASMLATTICE_NATS_URL        url
--nats-user        WASMLATTICE_NATS_USER       user (secret)
--nats-password    WASMLATTICE_NATS_PASSWORD   password (secret)
--nats-token       WASMLATTICE_NATS_TOKEN      token (secret)
--nats-creds       WASMLATTICE_NATS_CREDS      credentials_file
--tls-ca                                       tls_ca_file
--tls-cert                                     tls_cert_file
--tls-key                                      tls_key_file
--lattice          WASMLATTICE_LATTICE         (the lattice name)
=================  ==========================  ==================

click is imported inside ``nats_options`` only: the host daemon imports this
module for ``command_line`` and must not load click.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lattice.connection import NatsOptions
from lattice.redact import redacted
from lattice.subjects import DEFAULT_LATTICE

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
LATTICE_FLAG = "--lattice"
LATTICE_ENV = "WASMLATTICE_LATTICE"


@dataclass(frozen=True)
class Flag:
    flag: str
    option: str  # the NatsOptions field it sets
    envvar: str | None = None
    secret: bool = False  # passed on in the environment, never on a command line
    help: str | None = None

    @property
    def param(self) -> str:
        return f"nats_{self.option}"


URL_PARAM = "nats_url"  # the --nats-url parameter's name in a click context

FLAGS = (
    Flag("--nats-url", "url", "WASMLATTICE_NATS_URL", help="NATS server URL [default: local]."),
    Flag("--nats-user", "user", "WASMLATTICE_NATS_USER", secret=True),
    Flag("--nats-password", "password", "WASMLATTICE_NATS_PASSWORD", secret=True),
    Flag("--nats-token", "token", "WASMLATTICE_NATS_TOKEN", secret=True),
    Flag(
        "--nats-creds",
        "credentials_file",
        "WASMLATTICE_NATS_CREDS",
        help="NATS credentials file [default: lattice up's, for its server].",
    ),
    Flag("--tls-ca", "tls_ca_file", help="CA file to verify the NATS server."),
    Flag("--tls-cert", "tls_cert_file", help="Client certificate for NATS."),
    Flag("--tls-key", "tls_key_file", help="Client key for NATS."),
)


@dataclass(frozen=True)
class NatsFlags:
    """What the flags said; ``url`` is None when neither a flag nor a variable gave one."""

    lattice: str = DEFAULT_LATTICE
    url: str | None = None
    user: str | None = None
    password: str | None = None
    token: str | None = None
    credentials_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    def options(self, name: str, default_url: str = DEFAULT_NATS_URL) -> NatsOptions:
        """The connection options, ``name`` naming this client to the server."""
        values = {flag.option: getattr(self, flag.option) for flag in FLAGS}
        return NatsOptions(**{**values, "url": self.url or default_url, "name": name})

    def with_url(self, url: str) -> NatsFlags:
        return dataclasses.replace(self, url=url)


def nats_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command: adds the flags above; it receives ``nats: NatsFlags``."""
    import click  # here only: see the module docstring

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        values = {flag.option: kwargs.pop(flag.param) for flag in FLAGS}
        nats = NatsFlags(lattice=kwargs.pop("lattice_name"), **values)
        return func(*args, nats=nats, **kwargs)

    options = [
        click.option(flag.flag, flag.param, default=None, envvar=flag.envvar, help=flag.help)
        for flag in FLAGS
    ]
    options.append(
        click.option(
            LATTICE_FLAG,
            "lattice_name",
            default=DEFAULT_LATTICE,
            show_default=True,
            envvar=LATTICE_ENV,
            help="Lattice name.",
        )
    )
    decorated: Callable[..., Any] = command
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def command_line(options: NatsOptions, lattice: str) -> tuple[list[str], dict[str, str]]:
    """The flags and environment that hand ``options`` to a child process."""
    args = [LATTICE_FLAG, lattice]
    env: dict[str, str] = {}
    for flag in FLAGS:
        value = getattr(options, flag.option)
        if not value:
            continue
        # A URL with a password in it (nats://user:pass@host) is a secret too.
        secret = flag.secret or (flag.option == "url" and redacted(value) != value)
        if secret and flag.envvar is not None:
            env[flag.envvar] = value
        else:
            args += [flag.flag, value]
    return args, env
