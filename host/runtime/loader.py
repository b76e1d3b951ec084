"""Read a component's bytes from an artifact file, a URL, a registry or the lattice, with a pin.

Whoever can send ``component.scale`` chooses the source, so a source is a request
to read something on or near this host, and the loader treats it as such:

- **Files** are read only from the host's artifact directories (``LoadPolicy``):
  the path is resolved (symlinks included) before the check, then opened without
  following a symlink and without blocking, and only a regular file is read
  (a FIFO would hang a thread, ``/dev/zero`` never ends), under a size cap
  enforced while reading, not just from ``fstat``.
- **URLs** are fetched in chunks under the same cap and a timeout; a redirect is
  refused rather than followed (it could point anywhere, internal services too),
  and no error carries the response body.
- **OCI references** (``registry/repo:tag`` or ``@sha256:...``) are pulled with
  ``deploy.oci`` under the same cap and timeout: plain HTTP only for registries listed
  as insecure, redirects followed only for blob downloads and only to https or the
  registry itself, every blob checked against its digest.
- **Lattice objects** (``nats-object://sha256:<hex>``) are read from the lattice's
  object store (``lattice.artifacts``, given to the policy as ``objects``) and
  checked against their name.
- Pulled and fetched-by-digest bytes go into a content-addressed cache,
  ``<state_dir>/artifacts/sha256/<hex>`` (``deploy.blobs``): a host that restarts,
  or starts the same digest again, reads the cache instead of the network. A tag is
  looked up every time (tags move); specs store digests (``lattice apply`` pins them).
- **The header comes first**: bytes that are not a component are refused before
  any digest is computed, and no error carries a digest or bytes of the source.
  Otherwise a pin would be an oracle: "pin mismatch, got <digest>" of
  ``/etc/shadow``, or a yes/no per guess of a short secret file.
- Every source shown in an error goes through ``lattice.redact.redacted``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import stat
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

import aiohttp

from deploy import oci
from deploy.blobs import DEFAULT_CACHE_BYTES, ContentCache
from deploy.oci_auth import RegistryOptions
from deploy.sources import ObjectSource, OciSource, Reference, UnknownScheme, classify
from host.errors import DigestMismatch, FetchError, InvalidComponent, SourceRefused
from lattice.artifacts import ArtifactFailure, ArtifactMissing, ArtifactRefused
from lattice.redact import redacted

DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_FETCH_TIMEOUT_S = 60.0
CHUNK_BYTES = 2**20

WASM_MAGIC = b"\0asm"
# Bytes 4..8 of a wasm binary: version + layer. Core modules are version 1,
# layer 0; components are version 0x0d, layer 1.
CORE_MODULE_PREAMBLE = b"\x01\x00\x00\x00"
COMPONENT_PREAMBLE = b"\x0d\x00\x01\x00"
_PIN = re.compile(r"[0-9a-f]{64}")

# (sha256 hex, max bytes) -> the bytes of a lattice object (``lattice.artifacts``).
ObjectFetcher = Callable[[str, int], Awaitable[bytes]]


@dataclass(frozen=True)
class LoadPolicy:
    """Where components may be read from, how big they may be, how long a fetch may take."""

    artifact_dirs: tuple[Path, ...]
    max_bytes: int = DEFAULT_MAX_BYTES
    fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S
    # Registries: insecure ones, credentials (from the environment by default).
    registry: RegistryOptions = field(default_factory=RegistryOptions.from_env)
    # Where pulled blobs are kept by digest; None: no cache.
    cache_dir: Path | None = None
    # How lattice objects are read; None: nats-object:// sources are refused.
    objects: ObjectFetcher | None = None
    # The most bytes the blob cache keeps: the least recently used go first (deploy.blobs).
    cache_max_bytes: int = DEFAULT_CACHE_BYTES

    @classmethod
    def of(
        cls,
        artifact_dirs: Sequence[Path] | None = None,
        state_dir: Path | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S,
        *,
        registry: RegistryOptions | None = None,
        objects: ObjectFetcher | None = None,
    ) -> LoadPolicy:
        """A policy for ``artifact_dirs``, or for the default dirs if None; the blob
        cache lives in ``state_dir/artifacts``."""
        dirs = default_artifact_dirs(state_dir) if artifact_dirs is None else artifact_dirs
        registry = registry or RegistryOptions.from_env(
            timeout_s=fetch_timeout_s, max_bytes=max_bytes
        )
        cache_dir = state_dir / "artifacts" if state_dir is not None else None
        return cls(tuple(dirs), max_bytes, fetch_timeout_s, registry, cache_dir, objects)

    def allows(self, resolved: Path) -> bool:
        """Whether ``resolved`` (symlink-free, absolute) lies inside an artifact dir."""
        # Resolved now, not at construction: `build/` may become a symlink later.
        return any(resolved.is_relative_to(_resolve(d)) for d in self.artifact_dirs)


def default_artifact_dirs(state_dir: Path | None = None) -> list[Path]:
    """The working directory's ``build/`` and ``examples/``, and the state dir."""
    cwd = Path.cwd()
    dirs = [cwd / "build", cwd / "examples"]
    if state_dir is not None:
        dirs.append(state_dir)
    return dirs


async def fetch_component(
    source: str,
    sha256: str | None = None,
    policy: LoadPolicy | None = None,
    executor: Executor | None = None,
) -> bytes:
    """Read ``source`` (path, file:// or http(s):// URL), check its header, then its pin.

    File reads run on ``executor`` (the loop's default one if None).
    """
    policy = policy or LoadPolicy.of()
    shown = redacted(source)
    expected = _pin(sha256)
    kind = classify(source)
    try:
        async with asyncio.timeout(policy.fetch_timeout_s):
            if isinstance(kind, OciSource):
                data = await _pull(kind.reference, policy, executor)
            elif isinstance(kind, ObjectSource):
                data = await _fetch_object(kind, policy, executor)
            else:
                data = await _fetch_plain(source, shown, kind, policy, executor)
    except TimeoutError:
        raise FetchError(f"timed out after {policy.fetch_timeout_s:g} s fetching {shown}") from None
    check_component_bytes(data, shown)
    if expected is not None:
        actual = hashlib.sha256(data).hexdigest()
        if not hmac.compare_digest(actual, expected):
            raise DigestMismatch(shown)
    return data


async def _fetch_plain(
    source: str, shown: str, kind: object, policy: LoadPolicy, executor: Executor | None
) -> bytes:
    """A path, or a file:// or http(s):// URL."""
    try:
        parts = urlsplit(source) if "://" in source else None
    except ValueError:
        raise SourceRefused(f"{shown} is not a valid URL") from None
    scheme = parts.scheme.lower() if parts is not None else ""
    if scheme in ("http", "https"):
        return await _fetch_url(source, shown, policy.max_bytes)
    if parts is None or scheme == "file":
        path = Path(source) if parts is None else _file_url_path(parts, shown)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, read_artifact, path, shown, policy)
    hint = f": {kind.hint}" if isinstance(kind, UnknownScheme) else ""
    raise SourceRefused(f"{shown}: unsupported source scheme {scheme!r}{hint}")


def check_component_bytes(wasm: bytes, source: str) -> None:
    """Refuse, with a reason but none of its bytes, anything that is not a component binary."""
    if len(wasm) < 8 or wasm[:4] != WASM_MAGIC:
        raise InvalidComponent(f"{source} is not a component: not WebAssembly (no \\0asm header)")
    preamble = wasm[4:8]
    if preamble == CORE_MODULE_PREAMBLE:
        raise InvalidComponent(
            f"{source} is a core WebAssembly module, not a component "
            "(wrap it with `wasm-tools component new`)"
        )
    if preamble != COMPONENT_PREAMBLE:
        raise InvalidComponent(
            f"{source} is not a component: an unknown WebAssembly version or layer"
        )


def _pin(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    pin = sha256.strip().lower().removeprefix("sha256:")
    if not _PIN.fullmatch(pin):
        raise SourceRefused("the sha256 pin is not a digest: expected 64 hex digits")
    return pin


def _file_url_path(parts: SplitResult, shown: str) -> Path:
    if parts.netloc not in ("", "localhost"):
        raise SourceRefused(f"{shown}: a file:// URL must name a local path")
    return Path(unquote(parts.path))


# -- files -----------------------------------------------------------------


def read_artifact(path: Path, shown: str, policy: LoadPolicy) -> bytes:
    """The bytes of a regular file inside an artifact dir, at most ``policy.max_bytes``."""
    resolved = _resolve(path)
    if not policy.allows(resolved):
        # Refused before any look at the file: no hint whether it exists.
        raise SourceRefused(
            f"{shown} is outside this host's artifact directories "
            "(a host setting: --artifact-dir, HostConfig.artifact_dirs)"
        )
    # O_NOFOLLOW: the checked path has no symlinks; one swapped in since is refused.
    # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(resolved, flags)
    except FileNotFoundError:
        raise FetchError(f"component file not found: {shown}") from None
    except PermissionError:
        raise FetchError(f"no permission to read component file: {shown}") from None
    except OSError as exc:
        raise FetchError(f"cannot open component file {shown}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceRefused(f"{shown} is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > policy.max_bytes:
            raise SourceRefused(f"{shown} is over the {_size(policy.max_bytes)} component cap")
        return _read_capped(fd, shown, policy.max_bytes)
    finally:
        os.close(fd)


def _read_capped(fd: int, shown: str, limit: int) -> bytes:
    # fstat's size is not the truth for every regular file (procfs says 0, a file
    # can grow while read): the cap holds on what is actually read.
    chunks = []
    total = 0
    while chunk := os.read(fd, CHUNK_BYTES):
        total += len(chunk)
        if total > limit:
            raise SourceRefused(f"{shown} is over the {_size(limit)} component cap")
        chunks.append(chunk)
    return b"".join(chunks)


def _resolve(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise SourceRefused(f"cannot resolve the path {path}: {exc}") from None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n % 2**20 == 0 else f"{n}-byte"


# -- http(s) ---------------------------------------------------------------


async def _fetch_url(url: str, shown: str, limit: int) -> bytes:
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url, allow_redirects=False) as response:
                status = response.status
                if 300 <= status < 400:
                    raise SourceRefused(
                        f"fetching {shown}: HTTP {status} is a redirect, and redirects are "
                        "not followed (give the final URL)"
                    )
                if status != 200:
                    # Status only: the body is whatever the server says, and this
                    # error goes back to whoever asked.
                    raise FetchError(f"fetching {shown} failed: HTTP {status}")
                return await oci.read_capped(
                    response,
                    limit,
                    lambda: SourceRefused(f"{shown} is over the {_size(limit)} component cap"),
                )
    except aiohttp.ClientError as exc:
        if isinstance(exc, TimeoutError):
            raise  # reported with the timeout by the caller
        raise FetchError(f"fetching {shown} failed: {_describe(exc)}") from None


def _describe(exc: aiohttp.ClientError) -> str:
    """What went wrong, without text from the server or the full URL."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port} ({reason})"
    if isinstance(exc, aiohttp.InvalidURL):
        return "not a valid URL"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was cut short or malformed"
    return type(exc).__name__


# -- registries and the lattice's object store ---------------------------------------------


def _cache(policy: LoadPolicy) -> ContentCache | None:
    if policy.cache_dir is None:
        return None
    return ContentCache(policy.cache_dir, policy.cache_max_bytes)


async def _pull(reference: Reference, policy: LoadPolicy, executor: Executor | None) -> bytes:
    """The component layer of an OCI artifact (translated into the host's errors)."""
    cache = _cache(policy)
    try:
        async with oci.registry_client(policy.registry, cache, executor) as client:
            return (await client.pull(reference)).wasm
    except oci.NotAComponent as exc:
        raise InvalidComponent(str(exc)) from None
    except oci.ArtifactDigestError as exc:
        raise DigestMismatch(str(exc)) from None
    except (oci.ArtifactTooLarge, oci.RegistryRefused) as exc:
        raise SourceRefused(str(exc)) from None
    except oci.RegistryError as exc:
        raise FetchError(str(exc)) from None


async def _fetch_object(
    source: ObjectSource, policy: LoadPolicy, executor: Executor | None
) -> bytes:
    """A lattice object, from the blob cache if this host has read it before."""
    if policy.objects is None:
        raise SourceRefused(f"{source}: this host reads no lattice objects (not on a lattice)")
    cache = _cache(policy)
    loop = asyncio.get_running_loop()
    if cache is not None:
        found = await loop.run_in_executor(executor, cache.get, source.sha256, policy.max_bytes)
        if found is not None:
            return found
    try:
        data = await policy.objects(source.sha256, policy.max_bytes)
    except ArtifactMissing as exc:
        raise FetchError(f"{exc} (was the spec applied with `lattice apply`?)") from None
    except ArtifactRefused as exc:
        raise SourceRefused(str(exc)) from None
    except ArtifactFailure as exc:
        raise FetchError(str(exc)) from None
    if cache is not None:
        await loop.run_in_executor(executor, cache.put, source.sha256, data)
    return data
