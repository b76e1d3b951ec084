"""No ambient authority: what a component sees of the host when nothing is granted.

The `inspect` component (examples/components/inspect/app.py) reports the environment,
arguments, filesystem, stdin and network it can reach. The host serves WASI p2 itself
(``host.runtime.wasi``) and grants none of them, so it must find none of them,
while its stdout/stderr still reach the host log tagged with its id.

componentize-py's Python has no ``socket`` module, so the network is also probed from
a hand-lowered wasi:sockets component (examples/components/inspect/sockets-probe/),
built here because its WIT is not the providers' WIT the build script uses.

A probe that reports nothing proves nothing unless it could report something, so one
test grants env, argv, stdin and a directory directly and checks the probe sees them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from wasmtime import component as wc

from examples.build_components import EXAMPLES, run, tool
from host.runtime.bindings import types_only_imports
from host.runtime.components import ComponentSpec, HostRuntime
from host.runtime.loader import LoadPolicy
from providers import contracts
from providers.http_server import HttpRequest

SECRET_NAME, SECRET_VALUE = "WASMLATTICE_SECRET", "s3cr3t"
SOCKETS_PROBE = EXAMPLES / "inspect" / "sockets-probe"

# wasi:sockets/network error-code, in WIT order: the probe returns indices into it.
ERROR_CODES = [
    "unknown", "access-denied", "not-supported", "invalid-argument", "out-of-memory",
    "timeout", "concurrency-conflict", "not-in-progress", "would-block", "invalid-state",
    "new-socket-limit", "address-not-bindable", "address-in-use", "remote-unreachable",
    "connection-refused", "connection-reset", "connection-aborted", "datagram-too-large",
    "name-unresolvable", "temporary-resolver-failure", "permanent-resolver-failure",
]  # fmt: skip


@pytest.fixture
async def runtime(compile_cache: Path, artifact_policy: LoadPolicy) -> AsyncIterator[HostRuntime]:
    rt = HostRuntime(compile_cache, load_policy=artifact_policy)
    yield rt
    await rt.close()


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    """A host TCP socket listening on 127.0.0.1; non-blocking so accept() can check for visits.

    A connect that got through would complete in the kernel's backlog whether or not
    anyone calls accept(), so accept() afterwards tells whether any guest connected.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture
def udp_listener() -> Iterator[socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture(scope="session")
def sockets_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the raw wasi:sockets probe: core WAT, embed its own WIT, wrap as a component."""
    out = tmp_path_factory.mktemp("sockets-probe")
    wasm_tools = tool("wasm-tools")
    core, embedded, component = out / "core.wasm", out / "embedded.wasm", out / "probe.wasm"
    run([wasm_tools, "parse", str(SOCKETS_PROBE / "probe.wat"), "-o", str(core)])
    run([wasm_tools, "component", "embed", str(SOCKETS_PROBE), "--world", "sockets-probe",
         str(core), "-o", str(embedded)])  # fmt: skip
    run([wasm_tools, "component", "new", str(embedded), "-o", str(component)])
    return component


def assert_nothing_connected(tcp: socket.socket, udp: socket.socket | None = None) -> None:
    with pytest.raises(BlockingIOError):
        peer = tcp.accept()
        peer[0].close()
        pytest.fail(f"a guest connected to the host's listener from {peer[1]}")
    if udp is not None:
        with pytest.raises(BlockingIOError):
            data = udp.recvfrom(1024)
            pytest.fail(f"a guest sent a datagram to the host: {data!r}")


async def inspect(runtime: HostRuntime, query: str) -> dict[str, Any]:
    response = await runtime.handle_http("inspect", HttpRequest("GET", "/", query, [], b""))
    assert response.status == 200, response.body
    assert SECRET_VALUE.encode() not in response.body
    report: dict[str, Any] = json.loads(response.body)
    return report


def refused(probe: dict[str, Any], *errors: str) -> bool:
    return "ok" not in probe and probe.get("error") in errors


async def test_component_sees_no_ambient_authority(
    runtime: HostRuntime,
    components: dict[str, Path],
    tcp_listener: socket.socket,
    udp_listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Set before start, so neither instantiation nor the call could pick it up.
    monkeypatch.setenv(SECRET_NAME, SECRET_VALUE)
    caplog.set_level(logging.INFO, logger="wasmlattice.component")
    await runtime.start(ComponentSpec("inspect", str(components["inspect"])))
    tcp_port, udp_port = tcp_listener.getsockname()[1], udp_listener.getsockname()[1]

    report = await inspect(runtime, f"port={tcp_port}&udp_port={udp_port}")

    assert report["environ"] == {"ok": {}}
    # wasmtime passes no arguments at all, not even a program name.
    assert report["argv"] == {"ok": []}
    # No preopened directory: every path, "/" included, resolves to nothing.
    no_fs = ("FileNotFoundError", "PermissionError")
    assert refused(report["listdir_root"], *no_fs), report["listdir_root"]
    assert refused(report["listdir_cwd"], *no_fs), report["listdir_cwd"]
    assert refused(report["etc_passwd"], *no_fs), report["etc_passwd"]
    assert report["stdin"] == {"ok": ""}  # an empty stream: immediate EOF
    # componentize-py bundles `_socket` but not `socket.py`; the probe uses `_socket`,
    # whose libc sockets are wasi:sockets calls, so these denials come from WASI.
    assert refused(report["socket_module"], "ModuleNotFoundError")
    assert report["_socket_module"] == {"ok": "_socket"}
    for probe in ("tcp_connect", "udp_send"):
        # EACCES (PermissionError), not a refused or reset connection: nothing left the guest.
        assert refused(report[probe], "PermissionError"), (probe, report[probe])
        assert report[probe]["step"] in ("socket", "connect", "sendto"), report[probe]
    # The host's wasi:sockets refuses name lookups with access-denied (EACCES).
    assert refused(report["dns"], "PermissionError"), report["dns"]
    assert_nothing_connected(tcp_listener, udp_listener)

    messages = [r.getMessage() for r in caplog.records if r.name == "wasmlattice.component"]
    assert "[inspect] stdout: inspect stdout marker" in messages
    assert "[inspect] stderr: inspect stderr marker" in messages
    stderr_record = next(r for r in caplog.records if "inspect stderr marker" in r.getMessage())
    assert stderr_record.levelno == logging.WARNING  # stderr is logged as a warning
    assert getattr(stderr_record, "component_id", None) == "inspect"


async def test_wasi_sockets_are_denied(
    runtime: HostRuntime, sockets_probe: Path, tcp_listener: socket.socket
) -> None:
    await runtime.start(ComponentSpec("sockets", str(sockets_probe)))

    async def outcome(func: str, *args: Any) -> str:
        code: int = await runtime.call("sockets", "", func, *args)
        if code == -1:
            return "allowed"
        stage = "create" if code >= 1000 else func
        return f"{stage}: {ERROR_CODES[code % 1000]}"

    observed = {
        "tcp-connect": await outcome("tcp-connect", tcp_listener.getsockname()[1]),
        "tcp-bind": await outcome("tcp-bind"),
        "udp-bind": await outcome("udp-bind"),
        "resolve": await outcome("resolve"),
    }
    # The host's WASI refuses to even create TCP/UDP sockets, and refuses name
    # lookups, so no address check is ever reached.
    assert observed == {
        "tcp-connect": "create: access-denied",
        "tcp-bind": "create: access-denied",
        "udp-bind": "create: access-denied",
        "resolve": "resolve: access-denied",
    }
    assert_nothing_connected(tcp_listener)


async def test_the_listener_is_reachable_from_the_host(tcp_listener: socket.socket) -> None:
    """The denials above are the sandbox: the same listener accepts the host process."""
    port = tcp_listener.getsockname()[1]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        loop = asyncio.get_running_loop()
        peer, _address = await asyncio.wait_for(loop.sock_accept(tcp_listener), 5)
        peer.close()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_the_probe_sees_what_is_granted(
    runtime: HostRuntime, components: dict[str, Path], tmp_path: Path
) -> None:
    """The control: granted through wasmtime's own WASI, the same probe reports each item.

    So the empty results above come from the host's WASI, not from the probe or
    from componentize-py snapshotting its environment at build time.
    """
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("guest:x:1:1::/:/bin/false\n")
    stdin = tmp_path / "stdin"
    stdin.write_text("granted input")
    wasi = wasmtime.WasiConfig()
    wasi.env = [["GRANTED", "yes"]]
    wasi.argv = ["inspect", "--flag"]
    wasi.stdin_file = str(stdin)
    wasi.preopen_dir(str(root), "/")

    engine = runtime.engine
    component = engine.compile(components["inspect"].read_bytes(), "inspect")
    linker = wc.Linker(engine.engine)
    linker.add_wasip2()
    with linker.root() as root:
        for name in types_only_imports(engine.engine, component):
            with root.add_instance(name):
                pass
        with root.add_instance(contracts.LOGGING) as logging_iface:
            logging_iface.add_func("log", lambda _store, *_args: None)

    def call() -> bytes:
        store = wasmtime.Store(engine.engine)
        store.set_wasi(wasi)
        # The engine interrupts guests on epochs; give this store a deadline like the pool does.
        store.set_epoch_deadline(engine.deadline_ticks(30))
        instance = linker.instantiate(store, component)
        interface = instance.get_export_index(store, contracts.HTTP_HANDLER)
        index = instance.get_export_index(store, "handle", interface)
        assert index is not None
        handle = instance.get_func(store, index)
        assert handle is not None
        response = handle(store, HttpRequest("GET", "/", "", [], b""))
        handle.post_return(store)
        return bytes(response.body)

    # On a worker thread, as the pool runs guests: host calls may need this loop.
    report = json.loads(await asyncio.to_thread(call))
    assert report["environ"] == {"ok": {"GRANTED": "yes"}}
    assert report["argv"] == {"ok": ["inspect", "--flag"]}
    assert report["listdir_root"] == {"ok": ["etc"]}
    assert report["etc_passwd"] == {"ok": "guest:x:1:1::/:/bin/false\n"}
    assert report["stdin"] == {"ok": "granted input"}
