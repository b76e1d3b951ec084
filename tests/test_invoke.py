"""Component invocations over NATS: what the reply carries, both ways."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from lattice.connection import NatsOptions, connect
from lattice.errors import RemoteError
from lattice.invoke import FUNC_HEADER, STATUS_HEADER, invoke, serve_component
from lattice.natsd import NatsServer
from lattice.subjects import Subjects

SUBJECTS = Subjects()


class Refused(Exception):
    status = "refused"


async def handler(function: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    if function == "fail":
        raise Refused(f"no {body.decode()}")
    return body + b"!"


async def test_a_success_is_the_result_alone_and_an_error_names_its_status(
    nats_server: NatsServer,
) -> None:
    nc = await connect(NatsOptions(nats_server.url))
    responder = await serve_component(nc, SUBJECTS, "echo", "acme:echo/api", handler,
                                      concurrency=2)  # fmt: skip
    try:
        subject = SUBJECTS.rpc("echo", "acme:echo/api")
        # The raw reply of a success: no headers to build or parse at either end.
        ok = await nc.request(subject, b"hi", timeout=5, headers={FUNC_HEADER: "say"})
        assert (ok.data, ok.headers) == (b"hi!", None)
        assert await invoke(nc, SUBJECTS, "echo", "acme:echo/api", "say", b"hi") == b"hi!"

        failed = await nc.request(subject, b"way", timeout=5, headers={FUNC_HEADER: "fail"})
        assert (failed.data, failed.headers) == (b"no way", {STATUS_HEADER: "refused"})
        with pytest.raises(
            RemoteError, match=r"component echo \(acme:echo/api#fail\): no way"
        ) as e:
            await invoke(nc, SUBJECTS, "echo", "acme:echo/api", "fail", b"way")
        assert e.value.code == "refused"
    finally:
        await responder.close()
        await nc.close()
