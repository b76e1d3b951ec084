"""Who may talk to which registry, and how: registry options, credentials, auth challenges.

Plain data and parsing, no network (``deploy.oci`` does the HTTP):

- ``RegistryOptions``: registries reachable over plain HTTP (only those listed as
  insecure: ``localhost``, ``127.0.0.1`` and ``[::1]`` by default, more from
  ``$WASMLATTICE_INSECURE_REGISTRIES``), where credentials come from, timeouts and caps.
- Credentials, looked up per registry host: ``$WASMLATTICE_REGISTRY_USER`` and
  ``$WASMLATTICE_REGISTRY_PASSWORD`` (for the registry ``$WASMLATTICE_REGISTRY_HOST``
  names, or every registry if unset), else the ``auths`` of a docker-style config file
  (``--registry-config``, else ``$DOCKER_CONFIG/config.json``, else
  ``~/.docker/config.json``). Credential helpers (``credsStore``, ``credHelpers``)
  would mean running other programs and are not consulted. A password is never part
  of a repr, a log line or an error.
- ``parse_challenge``: a ``WWW-Authenticate`` header (``Basic realm=...`` or
  ``Bearer realm=...,service=...,scope=...``) as a scheme and its parameters.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_INSECURE = frozenset({"localhost", "127.0.0.1", "[::1]"})
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_BYTES = 64 * 2**20
ENV_USER = "WASMLATTICE_REGISTRY_USER"
ENV_PASSWORD = "WASMLATTICE_REGISTRY_PASSWORD"
ENV_HOST = "WASMLATTICE_REGISTRY_HOST"
ENV_INSECURE = "WASMLATTICE_INSECURE_REGISTRIES"


@dataclass(frozen=True)
class Credentials:
    """A user and a password (or token) for one registry; the repr hides the secret."""

    username: str
    password: str = field(repr=False)
    origin: str = "config"  # where they came from, to say so in an error

    def basic(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


@dataclass(frozen=True)
class RegistryOptions:
    """How registries are reached. Build from the environment with ``from_env``."""

    insecure: frozenset[str] = DEFAULT_INSECURE
    config_path: Path | None = None
    env_credentials: Credentials | None = field(default=None, repr=False)
    env_registry: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_env(
        cls,
        config_path: Path | None = None,
        insecure: tuple[str, ...] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> RegistryOptions:
        listed = os.environ.get(ENV_INSECURE, "")
        extra = {h.strip().lower() for h in (*insecure, *listed.split(",")) if h.strip()}
        user, password = os.environ.get(ENV_USER), os.environ.get(ENV_PASSWORD)
        creds = Credentials(user, password or "", "environment") if user else None
        return cls(
            insecure=DEFAULT_INSECURE | frozenset(extra),
            config_path=config_path,
            env_credentials=creds,
            env_registry=(os.environ.get(ENV_HOST) or "").lower() or None,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
        )

    def is_insecure(self, registry: str) -> bool:
        """Whether ``registry`` (host[:port]) may be reached over plain HTTP."""
        host = _host_of(registry)
        return registry.lower() in self.insecure or host in self.insecure

    def scheme(self, registry: str) -> str:
        return "http" if self.is_insecure(registry) else "https"

    def credentials(self, registry: str) -> Credentials | None:
        """Credentials for ``registry``, or None (anonymous)."""
        env = self.env_credentials
        if env is not None and self.env_registry in (None, registry.lower()):
            return env
        return _from_docker_config(self._config_file(), registry.lower())

    def _config_file(self) -> Path:
        if self.config_path is not None:
            return self.config_path
        docker_dir = os.environ.get("DOCKER_CONFIG")
        if docker_dir:
            return Path(docker_dir) / "config.json"
        return Path.home() / ".docker" / "config.json"


def _host_of(registry: str) -> str:
    registry = registry.lower()
    if registry.startswith("["):
        return registry.partition("]")[0] + "]"
    return registry.partition(":")[0]


def _from_docker_config(path: Path, registry: str) -> Credentials | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no config, or one we cannot read: anonymous
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if _config_key(str(key)) == registry and isinstance(entry, dict):
            return _entry_credentials(entry, str(path))
    return None


def _config_key(key: str) -> str:
    """``https://ghcr.io/v1/`` and ``ghcr.io`` name the same registry."""
    key = re.sub(r"^[a-z]+://", "", key.strip().lower())
    return key.split("/", 1)[0]


def _entry_credentials(entry: dict[str, object], origin: str) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return Credentials(user, password, origin) if sep else None
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str):
        return Credentials(name, secret, origin)
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        # Docker's convention: an identity token goes to the token service as a password.
        return Credentials("<token>", token, origin)
    return None


# -- challenges ---------------------------------------------------------------------------

_PARAM = re.compile(r'\s*([A-Za-z_][-A-Za-z0-9_]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header, or None if unreadable."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {}
    position = 0
    while position < len(rest):
        found = _PARAM.match(rest, position)
        if found is None or found.end() == position:
            break
        value = found[2] if found[2] is not None else found[3]
        params[found[1].lower()] = re.sub(r"\\(.)", r"\1", value)
        position = found.end()
    return Challenge(scheme.lower(), params)
