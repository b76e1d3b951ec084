"""A real OCI registry per test: Debian's ``docker-registry`` (the CNCF distribution
registry) on a free port, storage in the test's tmp dir, optionally behind basic auth
(an htpasswd file made with ``htpasswd -B``); stopped by pid.

Both binaries come from the system packages (``make test`` and ``.ci/run`` install
``docker-registry`` and ``apache2-utils`` when they are missing).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lattice.natsd import free_port, port_is_open

REGISTRY_BINARY = "/usr/bin/docker-registry"


@dataclass
class Registry:
    work_dir: Path
    user: str | None = None
    password: str | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> Registry:
        binary = shutil.which("docker-registry") or REGISTRY_BINARY
        if not Path(binary).exists():
            pytest.fail("docker-registry not found: apt-get install docker-registry")
        self.port = self.port or free_port()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = [
            "version: 0.1",
            "log: {level: warn}",
            f"storage: {{filesystem: {{rootdirectory: {self.work_dir / 'data'}}}}}",
            f"http: {{addr: '127.0.0.1:{self.port}', secret: test-secret}}",
        ]
        if self.user is not None:
            htpasswd = shutil.which("htpasswd")
            if htpasswd is None:
                pytest.fail("htpasswd not found: apt-get install apache2-utils")
            line = subprocess.run(
                [htpasswd, "-Bbn", self.user, self.password or ""],
                check=True,
                capture_output=True,
            ).stdout
            (self.work_dir / "htpasswd").write_bytes(line)
            path = self.work_dir / "htpasswd"
            config.append(f"auth: {{htpasswd: {{realm: test, path: {path}}}}}")
        (self.work_dir / "config.yml").write_text("\n".join(config) + "\n")
        with open(self.work_dir / "registry.log", "ab") as log:
            self.process = subprocess.Popen(
                [binary, "serve", str(self.work_dir / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while not port_is_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.work_dir / "registry.log").read_text(errors="replace")
                pytest.fail(f"docker-registry did not start on port {self.port}:\n{text}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class TokenProxy:
    """The registry behind the bearer-token flow, as ghcr.io and Docker Hub do it.

    ``/token`` hands a token for a scope to ``alice:s3cret-pw`` (basic auth); ``/v2/``
    wants that token and forwards to the real registry. Blob downloads are redirected,
    as registries redirect to storage: to ``/storage/`` here (the same host), or with
    ``redirect_elsewhere`` to the registry's own plain-HTTP address (another host).
    """

    def __init__(self, registry: Registry, *, redirect_elsewhere: bool = False) -> None:
        self.registry = registry
        self.redirect_elsewhere = redirect_elsewhere
        self.port = free_port()
        self.tokens_issued = 0
        self._runner: Any = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> TokenProxy:
        app = web.Application()
        app.router.add_get("/token", self._token)
        app.router.add_route("*", "/v2/{tail:.*}", self._v2)
        app.router.add_get("/storage/{tail:.*}", self._storage)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(b"alice:s3cret-pw").decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        self.tokens_issued += 1
        return web.json_response({"token": "tok|" + request.query.get("scope", "")})

    async def _v2(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        repository = tail.split("/manifests/")[0].split("/blobs/")[0]
        action = "pull" if request.method in ("GET", "HEAD") else "push"
        granted = request.headers.get("Authorization", "").removeprefix("Bearer tok|")
        name, _, actions = granted.removeprefix("repository:").rpartition(":")
        if name != repository or action not in actions.split(","):
            challenge = (
                f'Bearer realm="http://{self.host}/token",service="proxy",'
                f'scope="repository:{repository}:{action}"'
            )
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        if request.method == "GET" and "/blobs/sha256:" in tail:
            target = (
                f"http://localhost:{self.registry.port}/v2/{tail}"
                if self.redirect_elsewhere
                else f"/storage/{tail}"
            )
            return web.Response(status=307, headers={"Location": target})
        return await self._forward(request, f"/v2/{tail}")

    async def _storage(self, request: web.Request) -> web.StreamResponse:
        return await self._forward(request, "/v2/" + request.match_info["tail"])

    async def _forward(self, request: web.Request, path: str) -> web.Response:
        url = f"http://{self.registry.host}{path}"
        if request.query_string:
            url += "?" + request.query_string
        headers = {k: v for k, v in request.headers.items() if k in ("Accept", "Content-Type")}
        async with aiohttp.ClientSession() as http:
            async with http.request(
                request.method, url, headers=headers, data=await request.read()
            ) as answer:
                body = await answer.read()
                kept = {
                    k: v.replace(self.registry.host, self.host)
                    for k, v in answer.headers.items()
                    if k in ("Location", "Docker-Content-Digest", "Content-Type")
                }
                return web.Response(status=answer.status, body=body, headers=kept)
