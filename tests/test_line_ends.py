"""Every name rule refuses a value with a line feed at its end.

Python's ``$`` also matches just before a final ``\\n``, so a rule written
``^[a-z]+$`` and used with ``re.match`` took ``"abc\\n"``. Names become NATS
subjects (whose protocol lines end at a line feed), file names, HTTP header
names: each rule now ends at ``\\Z``, the end of the text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.blobs import ContentCache
from deploy.names import link_part_problem, name_problem, version_problem
from deploy.sources import UnknownScheme, classify
from host.runtime.wasi.http_types import header_problem
from lattice.artifacts import object_name
from lattice.errors import KeyValueFailure
from lattice.kv import decode_key, encode_key, open_bucket
from lattice.secrets import SecretError, check_secret_name
from lattice.subjects import check_token

HEX = "ab" * 32


def test_subject_tokens_and_secret_names() -> None:
    assert check_token("host id", "host-1") == "host-1"
    with pytest.raises(ValueError, match="invalid host id"):
        check_token("host id", "host-1\n")
    assert check_secret_name("db-password") == "db-password"
    with pytest.raises(SecretError):
        check_secret_name("db-password\n")


async def test_keyvalue_keys_and_buckets() -> None:
    assert encode_key("counter") == "counter"
    encoded = encode_key("counter\n")  # taken as a key, but not as a subject token
    assert encoded != "counter\n" and "\n" not in encoded
    assert decode_key(encoded) == "counter\n"
    with pytest.raises(KeyValueFailure, match="invalid bucket name"):
        await open_bucket(None, "bucket\n")  # type: ignore[arg-type]  # refused before use


def test_deployment_names_versions_and_link_parts() -> None:
    assert name_problem("app") is None and name_problem("app\n") is not None
    assert version_problem("v1.0") is None and version_problem("v1.0\n") is not None
    assert link_part_problem("default") is None and link_part_problem("default\n") is not None


def test_digests(tmp_path: Path) -> None:
    assert object_name(HEX) == f"sha256:{HEX}"
    with pytest.raises(ValueError):
        object_name(HEX + "\n")
    cache = ContentCache(tmp_path)
    assert cache.path(HEX).name == HEX
    with pytest.raises(ValueError):
        cache.path(HEX + "\n")
    assert not isinstance(classify(f"nats-object://sha256:{HEX}"), UnknownScheme)
    assert isinstance(classify(f"nats-object://sha256:{HEX}\n"), UnknownScheme)


def test_wasi_http_header_names() -> None:
    assert header_problem("x-a", b"v") is None
    assert header_problem("x-a\n", b"v") is not None
