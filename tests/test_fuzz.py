"""Property-based fuzzing (hypothesis) of the two inputs anyone can hand the system.

- **Control messages**: arbitrary bytes, arbitrary msgpack values and maps shaped
  like each operation's request go to a real host's control interface
  (``ControlInterface.handle``, the daemon's own, against a real nats-server).
  Every one gets a ``Reply``; a refusal has an error code and a one-line message;
  the host keeps serving: a ping over NATS answers after the run.
- **Manifests**: arbitrary text, YAML-ish documents built from the manifest's own
  vocabulary, and mutations of every example manifest (``examples/specs``) either
  load or raise ``ManifestError`` (never another exception), whose every problem
  names where: the source, and a line or a field path.

Examples are kept moderate (``max_examples``) so the suite stays fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.errors import ManifestError
from deploy.manifest import load_manifest
from host.control import ControlInterface
from host.daemon import HostConfig, HostDaemon
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.messages import Reply
from lattice.natsd import NatsServer

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "examples" / "specs").glob("*.yaml"))
SOURCE = "fuzz.yaml"
FUZZ = settings(max_examples=200, deadline=None)
CODES = {"bad_request", "not_found", "failed", "unavailable"}

# -- values ----------------------------------------------------------------------------

# Every integer msgpack can carry.
integers = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = st.none() | st.booleans() | integers | st.floats(allow_nan=True) | st.text(max_size=40)
msgpack_values = st.recursive(
    scalars | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=10) | integers, inner, max_size=5)
    ),
    max_leaves=20,
)

# -- control messages --------------------------------------------------------------------

# Every operation but those that legitimately end the test's subject: ``stop``
# stops the host and ``drain`` makes it refuse every later replica.
OPERATIONS = (
    "component.scale",
    "component.stop",
    "label.put",
    "label.del",
    "inventory",
    "provider.start",
    "provider.stop",
)
# The request fields of those operations, so some maps get past the first check.
FIELDS = (
    "component_id",
    "source",
    "sha256",
    "count",
    "max_concurrency",
    "deadline_s",
    "memory_mb",
    "config",
    "config_names",
    "annotations",
    "key",
    "value",
    "provider_id",
    "kind",
)
field_maps = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), msgpack_values)
SECRET = "s3cret-fuzz"
# Sources that reach the loader: paths outside the artifact dirs, special files, URLs
# with credentials to a closed port, schemes it does not take.
SOURCES = (
    "/dev/zero",
    "/etc/passwd",
    "file:///etc/shadow",
    "file://other-host/x.wasm",
    f"http://user:{SECRET}@127.0.0.1:1/x.wasm?token={SECRET}",
    f"https://{SECRET}@[::1/x",
    "ftp://example/x.wasm",
    "relative/x.wasm",
)
ids = st.from_regex(r"[-_a-zA-Z0-9]{1,12}", fullmatch=True)
# Requests that pass validation (or nearly), so the operations themselves run.
scale_requests = st.fixed_dictionaries(
    {"component_id": ids, "source": st.sampled_from(SOURCES) | st.text(min_size=1, max_size=30)},
    optional={
        "count": integers,
        "sha256": st.text(max_size=70),
        "max_concurrency": integers,
        "memory_mb": integers,
        "deadline_s": st.floats(),
        "config": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
        "config_names": st.lists(st.text(max_size=8), max_size=3),
    },
)


def packed(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


payloads = st.binary(max_size=200) | msgpack_values.map(packed) | field_maps.map(packed)
operations = st.sampled_from(OPERATIONS) | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz.*>", max_size=20
)
# Each operation with a request of (nearly) its own shape: past the decoding, into the
# operation itself.
shaped = st.one_of(
    st.tuples(st.just("component.scale"), scale_requests),
    st.tuples(st.just("component.stop"), st.fixed_dictionaries({"component_id": ids})),
    st.tuples(
        st.just("label.put"),
        st.fixed_dictionaries({"key": st.text(max_size=20), "value": st.text(max_size=40)}),
    ),
    st.tuples(st.just("label.del"), st.fixed_dictionaries({"key": st.text(max_size=20)})),
    st.tuples(st.just("provider.stop"), st.fixed_dictionaries({"provider_id": ids})),
    st.tuples(
        st.just("provider.start"),
        st.fixed_dictionaries(
            {"provider_id": ids, "kind": st.sampled_from(["keyvalue-redis", "keyvalue-etcd"])},
            optional={"config": st.dictionaries(st.text(max_size=10), st.text(max_size=20))},
        ),
    ),
).map(lambda pair: (pair[0], packed(pair[1])))
messages = st.tuples(operations, payloads) | shaped


@pytest.fixture
async def host(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[HostDaemon]:
    config = HostConfig(
        nats=NatsOptions(nats_server.url),
        state_dir=tmp_path / "host",
        host_id="fuzzed",
        http_port=0,
        heartbeat_s=0.2,
        artifact_dirs=[tmp_path / "artifacts"],
        fetch_timeout_s=2.0,
    )
    daemon = await HostDaemon.start(config)
    runner = asyncio.create_task(daemon.run(), name="fuzzed-host")
    try:
        yield daemon
    finally:
        daemon.request_stop(drain_timeout_s=1.0)
        await runner


async def test_any_control_message_gets_a_clear_reply_and_the_host_keeps_serving(
    host: HostDaemon, nats_server: NatsServer
) -> None:
    # Hypothesis drives its examples synchronously: from a thread, each one handled
    # on the host's own event loop, as a request from NATS would be.
    await asyncio.to_thread(_fuzz_control, host, asyncio.get_running_loop())
    nc = await connect(NatsOptions(nats_server.url))
    try:
        (inventory,) = await LatticeClient(nc).hosts()
        assert inventory.host_id == "fuzzed" and not inventory.draining
    finally:
        await nc.close()


def _fuzz_control(host: HostDaemon, loop: asyncio.AbstractEventLoop) -> None:
    control = ControlInterface(host, host.subjects)
    prefix = host.subjects.host_control(host.host_id, "")

    @FUZZ
    @given(messages)
    def one_message(message: tuple[str, bytes]) -> None:
        operation, data = message
        handled = asyncio.run_coroutine_threadsafe(control.handle(prefix + operation, data), loop)
        reply = handled.result(timeout=30)
        assert isinstance(reply, Reply)
        if not reply.ok:
            assert reply.code in CODES
            assert reply.error and reply.error.strip() and "\n" not in reply.error, reply
            assert SECRET not in reply.error, reply

    one_message()


# -- manifests ---------------------------------------------------------------------------

VOCABULARY = (
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "annotations",
    "version",
    "spec",
    "components",
    "type",
    "properties",
    "image",
    "config",
    "traits",
    "spreadscaler",
    "daemonscaler",
    "instances",
    "replicas",
    "spread",
    "requirements",
    "weight",
    "link",
    "target",
    "namespace",
    "package",
    "interfaces",
    "source",
    "provider",
    "sha256",
    "max_concurrency",
    "policies",
    "secrets",
)
TOP = {
    "apiVersion": "core.oam.dev/v1beta1",
    "kind": "Application",
    "metadata": {"name": "fuzz", "annotations": {"version": "v1"}},
}
yaml_values = st.recursive(
    scalars | st.sampled_from(VOCABULARY),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(VOCABULARY) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


def assert_loads_or_refuses_clearly(text: str) -> None:
    try:
        load_manifest(text, SOURCE)
    except ManifestError as exc:
        assert exc.problems, "a ManifestError names at least one problem"
        for problem in exc.problems:
            assert problem.source == SOURCE and problem.message, problem
            assert problem.line is not None or problem.path or "empty" in problem.message, (
                f"no location: {problem}"
            )
        assert str(exc).startswith(SOURCE)


@FUZZ
@given(st.text(max_size=300))
def test_any_text_loads_or_is_a_located_manifest_error(text: str) -> None:
    assert_loads_or_refuses_clearly(text)


@FUZZ
@given(yaml_values, st.booleans())
def test_yaml_documents_load_or_are_located_manifest_errors(value: Any, with_top: bool) -> None:
    document = {**TOP, "spec": value} if with_top else value
    assert_loads_or_refuses_clearly(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(st.sampled_from(SPECS), st.data())
def test_mutated_example_manifests_load_or_are_located_errors(
    path: Path, data: st.DataObject
) -> None:
    document = yaml.safe_load(path.read_text())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        document = _mutate(document, data)
    assert_loads_or_refuses_clearly(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(st.sampled_from(SPECS), st.data())
def test_example_manifests_cut_or_spliced_as_text_load_or_are_located_errors(
    path: Path, data: st.DataObject
) -> None:
    text = path.read_text()
    start = data.draw(st.integers(0, len(text)), label="start")
    end = data.draw(st.integers(start, min(len(text), start + 40)), label="end")
    insert = data.draw(st.text(max_size=20) | st.sampled_from(VOCABULARY), label="insert")
    assert_loads_or_refuses_clearly(text[:start] + insert + text[end:])


def _mutate(node: Any, data: st.DataObject) -> Any:
    """``node`` with one value somewhere inside replaced, deleted or duplicated."""
    children: list[Any] = []
    if isinstance(node, dict):
        children = list(node)
    elif isinstance(node, list):
        children = list(range(len(node)))
    if not children or data.draw(st.integers(0, 3), label="stop here") == 0:
        return data.draw(yaml_values, label="replacement")
    at = data.draw(st.sampled_from(children), label="step")
    action = data.draw(st.sampled_from(["descend", "delete", "duplicate"]), label="action")
    copy: Any = dict(node) if isinstance(node, dict) else list(node)
    if action == "delete":
        del copy[at]
    elif action == "duplicate" and isinstance(copy, list):
        copy.insert(at, copy[at])
    else:
        copy[at] = _mutate(copy[at], data)
    return copy
