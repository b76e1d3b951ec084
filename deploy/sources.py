"""What a component source names, and how a stored spec pins it to exact bytes.

A component's ``image`` (in a spec) or ``SOURCE`` (``lattice start component``) is one of:

- an **OCI reference**: ``registry/repo:tag``, ``registry/repo@sha256:<hex>``, optionally
  written ``oci://registry/repo...``. The registry part is a host with a dot, a port or
  ``localhost`` (docker's rule), which tells ``ghcr.io/x/y:1`` from a relative path;
- a **lattice object**: ``nats-object://sha256:<hex>``, bytes uploaded into the lattice's
  JetStream object store by ``lattice apply`` (``lattice.artifacts``);
- an **http(s) URL** or a ``file://`` URL;
- a **file path** (relative paths in a spec are relative to the spec's directory).

Pinning: when ``lattice apply`` stores a spec version, every component image is
replaced by a form that names exact bytes: a tag becomes ``registry/repo@sha256:...``
(the manifest digest), a file or URL becomes ``nats-object://sha256:...``. The
replacement edits only the image scalars' spans in the text (``pin_images``), so
the stored spec keeps the user's layout, comments and line numbers, and every
host deploys the same bytes however tags move later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

OCI_SCHEME = "oci"
OBJECT_SCHEME = "nats-object"
DEFAULT_TAG = "latest"

_REGISTRY = r"(?:localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)+|[a-z0-9-]+(?=:\d))(?::\d{1,5})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?P<registry>{_REGISTRY})/(?P<repository>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>\w[\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$",
    re.IGNORECASE,
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class Reference:
    """An OCI artifact reference; ``digest`` (``sha256:<hex>``) wins over ``tag``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, *, require_version: bool = True) -> Reference | None:
        """The reference ``text`` names, or None if it is not one.

        A bare reference needs a tag or digest (``host.example/dir:1``, not
        ``host.example/dir``, which reads as a path); after ``oci://`` the tag
        defaults to ``latest``.
        """
        body = text
        explicit = text[: len(OCI_SCHEME) + 3].lower() == f"{OCI_SCHEME}://"
        if explicit:
            body = text[len(OCI_SCHEME) + 3 :]
        found = _REFERENCE.match(body)
        if found is None:
            return None
        tag, digest = found["tag"], found["digest"]
        if tag is None and digest is None:
            if require_version and not explicit:
                return None
            tag = DEFAULT_TAG
        return cls(
            found["registry"].lower(),
            found["repository"],
            tag,
            digest.lower() if digest else None,
        )

    @property
    def version(self) -> str:
        """What the registry's manifest endpoint is asked for: the digest, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def pinned(self, digest: str) -> Reference:
        """The same artifact by manifest digest (no tag: a digest says it all)."""
        return Reference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag and not self.digest:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class OciSource:
    reference: Reference


@dataclass(frozen=True)
class ObjectSource:
    """Bytes in the lattice's artifact object store, named by their sha256 (64 hex)."""

    sha256: str

    def __str__(self) -> str:
        return object_source(self.sha256)


@dataclass(frozen=True)
class UrlSource:
    url: str


@dataclass(frozen=True)
class FileSource:
    path: str


@dataclass(frozen=True)
class UnknownScheme:
    scheme: str
    hint: str = "use a file path, a file:// or http(s):// URL, or an OCI reference"


Source = OciSource | ObjectSource | UrlSource | FileSource | UnknownScheme


def object_source(sha256_hex: str) -> str:
    return f"{OBJECT_SCHEME}://sha256:{sha256_hex}"


def classify(source: str, base_dir: str | Path | None = None) -> Source:
    """What ``source`` names. With ``base_dir`` (a spec's directory), relative paths are
    resolved against it, and an existing file wins over a reference that looks the same."""
    scheme, sep, rest = source.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme == OBJECT_SCHEME:
        digest = rest.lower()
        if _DIGEST.match(digest):
            return ObjectSource(digest.removeprefix("sha256:"))
        return UnknownScheme(OBJECT_SCHEME, f"expected {OBJECT_SCHEME}://sha256:<64 hex digits>")
    if scheme in ("http", "https", "file"):
        return UrlSource(source)
    if scheme and scheme != OCI_SCHEME:
        return UnknownScheme(scheme)
    path = source
    if base_dir is not None and not scheme and not Path(source).is_absolute():
        path = os.path.normpath(Path(base_dir) / source)
    reference = Reference.parse(source)
    if reference is not None and (scheme or base_dir is None or not Path(path).exists()):
        return OciSource(reference)
    if scheme:
        return UnknownScheme(OCI_SCHEME, "expected oci://registry/repository[:tag|@sha256:...]")
    return FileSource(path)


# -- pinning a spec's images -------------------------------------------------------------


def component_images(text: str) -> list[str]:
    """The ``image`` of every ``type: component`` entry of a manifest, in order."""
    return [node.value for node in _image_nodes(text)]


def pin_images(text: str, pins: Mapping[str, str]) -> str:
    """``text`` with each component image found in ``pins`` replaced by its pinned form.

    Only the image scalars change (quotes included), so line numbers stay valid.
    """
    spans = [
        (node.start_mark.index, node.end_mark.index, pins[node.value])
        for node in _image_nodes(text)
        if node.value in pins and pins[node.value] != node.value
    ]
    for start, end, value in sorted(spans, reverse=True):
        text = text[:start] + _plain(value) + text[end:]
    return text


def _plain(value: str) -> str:
    # Pinned forms are plain-safe (no ': ', ' #', no leading indicator); quote otherwise.
    if re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9._/:@+]*", value):
        return value
    return "'" + value.replace("'", "''") + "'"


def _image_nodes(text: str) -> list[yaml.ScalarNode]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    spec = _child(root, "spec")
    components = _child(spec, "components")
    found = []
    if isinstance(components, yaml.SequenceNode):
        for entry in components.value:
            kind = _child(entry, "type")
            image = _child(_child(entry, "properties"), "image")
            if (
                isinstance(kind, yaml.ScalarNode)
                and kind.value == "component"
                and isinstance(image, yaml.ScalarNode)
                and isinstance(image.value, str)
            ):
                found.append(image)
    return found


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for name, value in node.value:
        if isinstance(name, yaml.ScalarNode) and name.value == key:
            return value  # type: ignore[no-any-return]
    return None
