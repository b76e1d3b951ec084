"""The NATS flags are defined once (``lattice.options``): what a host hands a provider
process (``command_line``) reads back, through the same flags, as the same options."""

from __future__ import annotations

from collections.abc import Mapping

import click
from click.testing import CliRunner

from lattice.connection import NatsOptions
from lattice.options import NatsFlags, command_line, nats_options

FULL = NatsOptions(
    url="tls://nats.example:4222",
    user="alice",
    password="s3cret",
    token="t0ken",
    credentials_file="/etc/nats/user.creds",
    tls_ca_file="/etc/nats/ca.pem",
    tls_cert_file="/etc/nats/cert.pem",
    tls_key_file="/etc/nats/key.pem",
    name="provider-kv",
)


def read_back(args: list[str], env: Mapping[str, str | None]) -> NatsFlags:
    seen: list[NatsFlags] = []

    @click.command()
    @nats_options
    def command(nats: NatsFlags) -> None:
        seen.append(nats)

    result = CliRunner().invoke(command, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return seen[0]


def test_a_child_reads_back_the_same_options() -> None:
    args, env = command_line(FULL, "prod")
    flags = read_back(args, env)
    assert flags.lattice == "prod"
    assert flags.options("provider-kv") == FULL


def test_secrets_travel_in_the_environment_only() -> None:
    args, env = command_line(FULL, "prod")
    assert not {"alice", "s3cret", "t0ken"} & set(args)
    assert set(env) == {
        "WASMLATTICE_NATS_USER",
        "WASMLATTICE_NATS_PASSWORD",
        "WASMLATTICE_NATS_TOKEN",
    }


def test_unset_options_are_left_out_and_the_url_defaults() -> None:
    args, env = command_line(NatsOptions("nats://127.0.0.1:4222"), "default")
    assert args == ["--lattice", "default", "--nats-url", "nats://127.0.0.1:4222"] and env == {}
    flags = read_back([], {"WASMLATTICE_NATS_URL": None})  # unset, whatever the shell says
    assert flags.url is None
    assert flags.options("x", default_url="nats://here:1").url == "nats://here:1"
