"""Fetch a component's bytes from a file path or an http(s) URL, with an optional pin.

A pin is the hex sha256 of the component; a mismatch refuses the component and
shows both digests, so an operator can tell a tampered artifact from a typo.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from urllib.parse import urlparse

import aiohttp

from host.errors import DigestMismatch, FetchError

MAX_COMPONENT_BYTES = 256 * 2**20
FETCH_TIMEOUT_S = 60.0


async def fetch_component(source: str, sha256: str | None = None) -> bytes:
    """Read ``source`` (path, file:// or http(s):// URL) and check its pin."""
    scheme = urlparse(source).scheme
    if scheme in ("http", "https"):
        data = await _fetch_url(source)
    else:
        path = Path(source[len("file://") :] if scheme == "file" else source)
        data = await asyncio.to_thread(_read_file, path, source)
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256.lower().removeprefix("sha256:"):
            raise DigestMismatch(source, sha256, actual)
    return data


def _read_file(path: Path, source: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_COMPONENT_BYTES:
            raise FetchError(f"{source} is {size} bytes, over the {MAX_COMPONENT_BYTES} limit")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise FetchError(f"component file not found: {source}") from exc
    except IsADirectoryError as exc:
        raise FetchError(f"component source is a directory: {source}") from exc
    except PermissionError as exc:
        raise FetchError(f"no permission to read component file: {source}") from exc


async def _fetch_url(url: str) -> bytes:
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                if response.status != 200:
                    raise FetchError(f"fetching {url} failed: HTTP {response.status}")
                data = await response.content.read(MAX_COMPONENT_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FetchError(f"fetching {url} failed: {exc or type(exc).__name__}") from exc
    if len(data) > MAX_COMPONENT_BYTES:
        raise FetchError(f"{url} is over the {MAX_COMPONENT_BYTES} byte limit")
    return data
