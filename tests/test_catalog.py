"""The catalog agrees with what implements it, and its views answer each layer's question."""

from __future__ import annotations

import click

from catalog import contracts
from catalog.kinds import (
    ALWAYS_GRANTED,
    BUILTIN_CAPABILITIES,
    CAPABILITY_KINDS,
    KINDS,
    PLACED_KINDS,
    PROVIDER_INTERFACES,
    placed_kind,
)
from providers.run import main as run_provider


def test_every_placed_kind_has_a_command_reading_its_config_from_the_environment() -> None:
    assert isinstance(run_provider, click.Group)
    assert sorted(run_provider.commands) == sorted(PLACED_KINDS)
    for name in PLACED_KINDS:
        kind = placed_kind(name)
        assert kind is not None and kind.serves in PROVIDER_INTERFACES
        envvars = {p.envvar for p in run_provider.commands[name].params}
        assert {key.env for key in kind.config} <= envvars


def test_views_of_the_kinds() -> None:
    assert CAPABILITY_KINDS == ("http-server", "keyvalue", "http-client", "keyvalue-redis")
    assert BUILTIN_CAPABILITIES == ("http-server", "keyvalue", "http-client")
    assert PLACED_KINDS == ("keyvalue-redis",)
    assert PROVIDER_INTERFACES == {
        "keyvalue": (contracts.KEYVALUE_STORE, contracts.KEYVALUE_ATOMICS),
        "http-client": (contracts.WASI_HTTP_OUTGOING,),
        "logging": (contracts.LOGGING,),
        "config": (contracts.CONFIG_STORE,),
    }
    assert ALWAYS_GRANTED == (contracts.LOGGING, contracts.CONFIG_STORE)
    assert placed_kind("keyvalue") is None and placed_kind("nope") is None
    redis = KINDS["keyvalue-redis"]
    assert (redis.required_config, redis.optional_config) == (("redis_url",), ("key_prefix",))
