"""Pull and push wasm components from OCI registries (the OCI distribution API, v2).

An artifact is a manifest (``application/vnd.oci.image.manifest.v1+json``, or docker's
v2 manifest) whose one wasm layer is the component. Two layouts are read: the CNCF
wasm OCI artifact layout that wasmCloud and wkg publish (config
``application/vnd.wasm.config.v0+json``, layer ``application/wasm``) and wasmCloud's
older layer type (``application/vnd.module.wasm.content.layer.v1+wasm``). Anything
else (an image index, a container image, a provider archive) is refused with the
media types found. ``push`` writes the CNCF layout.

What the client guarantees:

- **Digests**: every blob is checked against its digest while it streams in; a
  manifest pulled by digest is checked against that digest. ``resolve`` turns a tag
  into the manifest's digest, so a caller can pin what it saw.
- **Bounds**: one overall timeout per operation, a cap on manifests and on layers
  (checked against the declared size first, then on what actually arrives).
- **Transport**: https, except for registries listed as insecure. Redirects are
  followed only for blob downloads (registries hand those to storage) and only to
  https or to the registry itself; credentials are never sent to another host.
- **Auth**: anonymous first; on a 401, ``Basic`` with the registry's credentials, or
  the bearer-token flow (the token service named by the challenge, given the
  credentials if there are any). Errors name the registry and repository, never a
  credential or a response body (only the registry's error codes).

Errors::

    RegistryError
    ├── RegistryUnreachable   connecting failed or timed out                 (retryable)
    ├── RegistryAuthError     credentials missing or refused (401/403)
    ├── ArtifactNotFound      no such repository, tag, digest or blob
    ├── NotAComponent         the artifact is not a wasm component layout
    ├── ArtifactDigestError   bytes that do not match their digest
    ├── ArtifactTooLarge      over the size cap
    └── RegistryRefused       anything else: insecure transport, a redirect elsewhere,
                              an unexpected status
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from deploy.blobs import ContentCache
from deploy.oci_auth import Credentials, RegistryOptions, parse_challenge
from deploy.sources import Reference

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"
WASMCLOUD_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
WASM_LAYERS = (WASM_LAYER, WASMCLOUD_LAYER)
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_VERSION = "org.opencontainers.image.version"
MAX_MANIFEST_BYTES = 4 * 2**20
MAX_REDIRECTS = 5
CHUNK_BYTES = 2**20
_ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, *INDEX_TYPES))


class RegistryError(Exception):
    retryable: bool = False


class RegistryUnreachable(RegistryError):
    retryable = True


class RegistryAuthError(RegistryError):
    pass


class ArtifactNotFound(RegistryError):
    pass


class NotAComponent(RegistryError):
    pass


class ArtifactDigestError(RegistryError):
    pass


class ArtifactTooLarge(RegistryError):
    pass


class RegistryRefused(RegistryError):
    pass


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    """What a reference names now: the pinned reference and the component layer."""

    reference: Reference  # by manifest digest
    layer: Layer
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class Pulled:
    resolved: Resolved
    wasm: bytes


@asynccontextmanager
async def registry_client(
    options: RegistryOptions | None = None,
    cache: ContentCache | None = None,
    executor: Executor | None = None,
) -> AsyncIterator[RegistryClient]:
    """A client with its own HTTP session, closed on exit."""
    options = options or RegistryOptions.from_env()
    async with aiohttp.ClientSession() as session:
        yield RegistryClient(options, session, cache, executor)


class RegistryClient:
    """Pull, resolve and push over one aiohttp session; ``cache`` keeps what was pulled."""

    def __init__(
        self,
        options: RegistryOptions,
        session: aiohttp.ClientSession,
        cache: ContentCache | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.options = options
        self.session = session
        self.cache = cache
        self.executor = executor
        # Authorization header per (registry, repository, actions), once one worked.
        self._auth: dict[tuple[str, str, str], str] = {}

    # -- pulling ------------------------------------------------------------------------

    async def resolve(self, reference: Reference) -> Resolved:
        """The manifest ``reference`` names, pinned to its digest, with its wasm layer."""
        async with self._deadline(reference, "resolving"):
            return await self._resolve(reference)

    async def pull(self, reference: Reference) -> Pulled:
        """The component ``reference`` names; by digest, the cache may answer alone."""
        async with self._deadline(reference, "pulling"):
            resolved = await self._resolve(reference)
            layer = resolved.layer
            wasm = await self._cached(layer.digest)
            if wasm is None:
                wasm = await self._blob(reference, layer)
                await self._store(layer.digest, wasm)
            return Pulled(resolved, wasm)

    async def _resolve(self, reference: Reference) -> Resolved:
        raw = await self._cached(reference.digest) if reference.digest else None
        if raw is None:
            raw = await self._manifest(reference)
            if reference.digest:
                await self._store(reference.digest, raw)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        return Resolved(reference.pinned(digest), *_component_layer(raw, reference, self.options))

    async def _manifest(self, reference: Reference) -> bytes:
        path = f"/v2/{reference.repository}/manifests/{reference.version}"
        headers = {"Accept": _ACCEPT}
        async with self._request("GET", reference, path, headers=headers) as response:
            if response.status == 404:
                what = f"tag {reference.tag!r}" if not reference.digest else "digest"
                raise ArtifactNotFound(f"{reference}: no such {what} in the registry")
            self._expect(response, reference, 200)
            raw = await _read_capped(response, MAX_MANIFEST_BYTES, f"{reference} manifest")
        if reference.digest and not _digest_matches(raw, reference.digest):
            raise ArtifactDigestError(f"{reference}: the manifest does not match its digest")
        return raw

    async def _blob(self, reference: Reference, layer: Layer) -> bytes:
        path = f"/v2/{reference.repository}/blobs/{layer.digest}"
        async with self._request("GET", reference, path, blob=True) as response:
            if response.status == 404:
                raise ArtifactNotFound(f"{reference}: the registry has no blob {layer.digest}")
            self._expect(response, reference, 200)
            limit = min(layer.size, self.options.max_bytes)
            data = await _read_capped(response, limit, f"{reference} layer")
        if len(data) != layer.size or not _digest_matches(data, layer.digest):
            raise ArtifactDigestError(f"{reference}: layer {layer.digest} does not match")
        return data

    # -- pushing ------------------------------------------------------------------------

    async def push(
        self, reference: Reference, wasm: bytes, annotations: Mapping[str, str]
    ) -> Reference:
        """Push ``wasm`` as a CNCF wasm artifact at ``reference``; its pinned form."""
        if len(wasm) > self.options.max_bytes:
            raise ArtifactTooLarge(f"the component is over the {self.options.max_bytes}-byte cap")
        layer_digest = _digest(wasm)
        config = json.dumps(
            {
                "created": annotations.get(ANNOTATION_CREATED),
                "architecture": "wasm",
                "os": "wasip2",
                "layerDigests": [layer_digest],
            },
            separators=(",", ":"),
        ).encode()
        title = annotations.get(ANNOTATION_TITLE)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": WASM_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": WASM_LAYER,
                    "digest": layer_digest,
                    "size": len(wasm),
                    **({"annotations": {ANNOTATION_TITLE: title}} if title else {}),
                }
            ],
            "annotations": dict(annotations),
        }
        raw = json.dumps(manifest, separators=(",", ":")).encode()
        async with self._deadline(reference, "pushing to"):
            for blob in (config, wasm):
                await self._upload(reference, blob)
            path = f"/v2/{reference.repository}/manifests/{reference.version}"
            headers = {"Content-Type": OCI_MANIFEST}
            async with self._request(
                "PUT", reference, path, headers=headers, data=raw, actions="pull,push"
            ) as response:
                self._expect(response, reference, 201)
        return reference.pinned(_digest(raw))

    async def _upload(self, reference: Reference, blob: bytes) -> None:
        digest = _digest(blob)
        path = f"/v2/{reference.repository}/blobs/{digest}"
        async with self._request("HEAD", reference, path, actions="pull,push") as response:
            if response.status == 200:
                return  # the registry has it already
        path = f"/v2/{reference.repository}/blobs/uploads/"
        async with self._request("POST", reference, path, actions="pull,push") as response:
            self._expect(response, reference, 202)
            location = response.headers.get("Location", "")
        target = urljoin(self._base(reference) + path, location)
        if urlsplit(target).netloc != urlsplit(self._base(reference)).netloc:
            raise RegistryRefused(f"{reference}: the registry sent the upload to another host")
        separator = "&" if urlsplit(target).query else "?"
        target += separator + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream"}
        async with self._request(
            "PUT", reference, target, headers=headers, data=blob, actions="pull,push"
        ) as response:
            self._expect(response, reference, 201)

    # -- HTTP, auth and redirects ----------------------------------------------------------

    def _base(self, reference: Reference) -> str:
        return f"{self.options.scheme(reference.registry)}://{reference.registry}"

    @asynccontextmanager
    async def _deadline(self, reference: Reference, doing: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.options.timeout_s):
                yield
        except TimeoutError:
            raise RegistryUnreachable(
                f"timed out after {self.options.timeout_s:g} s {doing} {reference}"
            ) from None
        except aiohttp.ClientError as exc:
            raise RegistryUnreachable(f"{doing} {reference} failed: {_describe(exc)}") from None

    @asynccontextmanager
    async def _request(
        self,
        method: str,
        reference: Reference,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        actions: str = "pull",
        blob: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request with auth (a 401 answered once), redirects only for blobs."""
        url = path if "://" in path else self._base(reference) + path
        key = (reference.registry, reference.repository, actions)
        for attempt in range(2):
            sent = dict(headers or {})
            if key in self._auth:
                sent["Authorization"] = self._auth[key]
            response = await self.session.request(
                method, url, headers=sent, data=data, allow_redirects=False
            )
            if response.status == 401 and attempt == 0:
                challenge = response.headers.get("WWW-Authenticate", "")
                response.release()
                self._auth[key] = await self._authorize(reference, challenge, actions)
                continue
            break
        try:
            if blob and 300 <= response.status < 400:
                response = await self._follow(reference, response)
            yield response
        finally:
            response.release()

    async def _follow(
        self, reference: Reference, response: aiohttp.ClientResponse
    ) -> aiohttp.ClientResponse:
        """Follow a blob's redirects to https, or back to the registry itself."""
        registry = urlsplit(self._base(reference))
        for _ in range(MAX_REDIRECTS):
            if not 300 <= response.status < 400:
                return response
            target = urljoin(str(response.url), response.headers.get("Location", ""))
            parts = urlsplit(target)
            same = (parts.scheme, parts.netloc) == (registry.scheme, registry.netloc)
            response.release()
            if parts.scheme != "https" and not same:
                raise RegistryRefused(
                    f"{reference}: the registry redirected a download to a non-https URL"
                )
            # Storage URLs carry their own signature; our credentials stay home.
            auth = self._auth.get((reference.registry, reference.repository, "pull"))
            sent = {"Authorization": auth} if same and auth else {}
            response = await self.session.get(target, headers=sent, allow_redirects=False)
        response.release()
        raise RegistryRefused(f"{reference}: more than {MAX_REDIRECTS} redirects for one blob")

    async def _authorize(self, reference: Reference, header: str, actions: str) -> str:
        """The Authorization header a 401's challenge asks for."""
        creds = self.options.credentials(reference.registry)
        challenge = parse_challenge(header)
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            raise RegistryAuthError(
                f"{reference}: the registry asks for an authentication scheme this client "
                "does not speak"
            )
        if challenge.scheme == "basic":
            if creds is None:
                raise RegistryAuthError(_no_credentials(reference))
            return creds.basic()
        return "Bearer " + await self._token(reference, challenge.params, creds, actions)

    async def _token(
        self,
        reference: Reference,
        params: Mapping[str, str],
        creds: Credentials | None,
        actions: str,
    ) -> str:
        realm = params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and self.options.is_insecure(parts.netloc)
        ):
            raise RegistryAuthError(f"{reference}: the registry's token service is not https")
        query = {"scope": f"repository:{reference.repository}:{actions}"}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"Authorization": creds.basic()} if creds else {}
        url = realm + ("&" if parts.query else "?") + urlencode(query)
        async with self.session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status in (401, 403):
                raise RegistryAuthError(_refused(reference, creds))
            if response.status != 200:
                raise RegistryAuthError(
                    f"{reference}: the token service answered HTTP {response.status}"
                )
            body = await _read_capped(response, 2**20, "the token")
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryAuthError(f"{reference}: the token service sent no token")
        return token

    def _expect(self, response: aiohttp.ClientResponse, reference: Reference, status: int) -> None:
        if response.status == status:
            return
        if response.status in (401, 403):
            creds = self.options.credentials(reference.registry)
            raise RegistryAuthError(_refused(reference, creds))
        if 300 <= response.status < 400:
            raise RegistryRefused(f"{reference}: HTTP {response.status} redirect not followed")
        raise RegistryRefused(f"{reference}: the registry answered HTTP {response.status}")

    # -- cache ------------------------------------------------------------------------------

    async def _cached(self, digest: str | None) -> bytes | None:
        if self.cache is None or digest is None:
            return None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, self.cache.get, digest, self.options.max_bytes
        )

    async def _store(self, digest: str, data: bytes) -> None:
        if self.cache is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, self.cache.put, digest, data)


# -- manifests ----------------------------------------------------------------------------


def _component_layer(
    raw: bytes, reference: Reference, options: RegistryOptions
) -> tuple[Layer, dict[str, str]]:
    """The one wasm layer of a manifest, and the manifest's annotations."""
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise NotAComponent(f"{reference}: the manifest is not JSON") from None
    if not isinstance(manifest, dict):
        raise NotAComponent(f"{reference}: the manifest is not a JSON object")
    media_type = str(manifest.get("mediaType") or "")
    if media_type in INDEX_TYPES or "manifests" in manifest:
        raise NotAComponent(
            f"{reference} is an image index ({media_type or 'manifests list'}), not a wasm "
            "component artifact"
        )
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    layers = [_layer(item) for item in manifest.get("layers") or [] if isinstance(item, dict)]
    wasm = [layer for layer in layers if layer.media_type in WASM_LAYERS]
    if len(wasm) != 1:
        found = ", ".join(sorted({layer.media_type for layer in layers})) or "none"
        raise NotAComponent(
            f"{reference} is not a wasm component artifact: config "
            f"{(config or {}).get('mediaType') or 'none'}, layers {found} (expected one "
            f"{WASM_LAYER} or {WASMCLOUD_LAYER} layer)"
        )
    (layer,) = wasm
    if layer.size > options.max_bytes:
        raise ArtifactTooLarge(
            f"{reference}: the component is {layer.size} bytes, over the "
            f"{options.max_bytes}-byte cap"
        )
    annotations = manifest.get("annotations")
    return layer, {str(k): str(v) for k, v in (annotations or {}).items()}


def _layer(item: dict[str, Any]) -> Layer:
    size = item.get("size")
    annotations = item.get("annotations") if isinstance(item.get("annotations"), dict) else {}
    return Layer(
        str(item.get("mediaType") or ""),
        str(item.get("digest") or ""),
        size if isinstance(size, int) and size >= 0 else 0,
        {str(k): str(v) for k, v in (annotations or {}).items()},
    )


# -- helpers ------------------------------------------------------------------------------


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _digest_matches(data: bytes, digest: str) -> bool:
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256":
        return False
    return hmac.compare_digest(hashlib.sha256(data).hexdigest(), expected.lower())


async def read_capped(
    response: aiohttp.ClientResponse, limit: int, too_large: Callable[[], Exception]
) -> bytes:
    """The body, refused (``too_large()``) past ``limit`` bytes: checked on what arrives,
    not only on the header, so a server that lies about the length gets no further."""
    if response.content_length is not None and response.content_length > limit:
        raise too_large()
    chunks = []
    total = 0
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        total += len(chunk)
        if total > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_capped(response: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    return await read_capped(
        response, limit, lambda: ArtifactTooLarge(f"{what} is over the {limit}-byte cap")
    )


def _no_credentials(reference: Reference) -> str:
    return (
        f"{reference}: the registry {reference.registry} needs credentials and none were "
        "found (docker config auths, or WASMLATTICE_REGISTRY_USER/_PASSWORD)"
    )


def _refused(reference: Reference, creds: Credentials | None) -> str:
    if creds is None:
        return _no_credentials(reference)
    return (
        f"{reference}: the registry {reference.registry} refused the credentials "
        f"for user {creds.username!r} (from {creds.origin})"
    )


def _describe(exc: aiohttp.ClientError) -> str:
    """What went wrong, without text from the server."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port} ({reason})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was cut short or malformed"
    return type(exc).__name__
