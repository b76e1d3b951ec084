"""``lattice push`` / ``lattice pull``, and pinning a spec's components at apply time.

``push FILE REF`` publishes a component as a CNCF wasm OCI artifact (config
``application/vnd.wasm.config.v0+json``, one ``application/wasm`` layer) with the
annotations wasm artifacts carry (``org.opencontainers.image.created``, ``.title``,
``.version``) and prints its digest; ``pull REF`` writes the component to a file.

``pin_sources`` is what ``lattice apply`` does before storing a spec version: each
component's image is resolved to exact bytes the whole lattice can reach (a tag to
its manifest digest, a file or URL to an object in the lattice's object store; see
``deploy.sources``), so the version deploys the same bytes on every host, whenever.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from cli.common import emit, output_option, progress, run
from deploy import oci
from deploy.oci_auth import RegistryOptions
from deploy.sources import (
    FileSource,
    ObjectSource,
    OciSource,
    Reference,
    UrlSource,
    classify,
    component_images,
    pin_images,
)
from host.runtime.loader import (
    DEFAULT_MAX_BYTES,
    LoadPolicy,
    check_component_bytes,
    fetch_component,
)
from lattice.artifacts import ArtifactStore
from lattice.client import LatticeClient

T = TypeVar("T")


def registry_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--registry-config and --insecure-registry, for commands that reach registries."""
    options = [
        click.option(
            "--registry-config",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Docker-style config with registry credentials "
            "[default: $DOCKER_CONFIG/config.json, ~/.docker/config.json].",
        ),
        click.option(
            "--insecure-registry",
            "insecure_registries",
            multiple=True,
            help="Registry host[:port] reachable over plain HTTP (repeatable; "
            "localhost and 127.0.0.1 always are).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_registry_options(kwargs: dict[str, Any]) -> RegistryOptions:
    return RegistryOptions.from_env(
        config_path=kwargs.pop("registry_config"),
        insecure=tuple(kwargs.pop("insecure_registries")),
    )


def run_registry(coro: Coroutine[Any, Any, T]) -> T:
    """``cli.common.run``, with registry errors as one clear line too."""
    with registry_errors():
        return run(coro)


@contextlib.contextmanager
def registry_errors() -> Iterator[None]:
    try:
        yield
    except oci.RegistryError as exc:
        raise click.ClickException(str(exc)) from exc


def _reference(text: str) -> Reference:
    reference = Reference.parse(text, require_version=False)
    if reference is None:
        raise click.BadParameter(
            f"{text!r} is not an OCI reference: registry[:port]/repository[:tag][@sha256:...]",
            param_hint="REF",
        )
    return reference


@click.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("ref")
@click.option("--version", "version", default=None, help="Version annotation [default: the tag].")
@registry_options
@output_option
def push(file: Path, ref: str, version: str | None, output: str, **kwargs: Any) -> None:
    """Publish the component FILE at REF (registry/repository:tag); print its digest."""
    reference = _reference(ref)
    options = make_registry_options(kwargs)
    wasm = run(_read_component(str(file.resolve()), options.max_bytes))
    annotations = {
        oci.ANNOTATION_CREATED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        oci.ANNOTATION_TITLE: file.name,
    }
    if version or (reference.tag and reference.tag != "latest"):
        annotations[oci.ANNOTATION_VERSION] = version or str(reference.tag)

    async def action() -> Reference:
        async with oci.registry_client(options) as client:
            return await client.push(reference, wasm, annotations)

    pinned = run_registry(action())
    data = {"reference": str(reference), "pinned": str(pinned), "digest": pinned.digest}
    emit(output, data, lambda: click.echo(f"pushed {reference}\ndigest: {pinned.digest}"))


@click.command()
@click.argument("ref")
@click.option(
    "-o",
    "--output-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the component [default: its title annotation, or <name>.wasm].",
)
@registry_options
def pull(ref: str, output_file: Path | None, **kwargs: Any) -> None:
    """Fetch the component at REF into a file; print its digest."""
    reference = _reference(ref)
    options = make_registry_options(kwargs)

    async def action() -> oci.Pulled:
        async with oci.registry_client(options) as client:
            pulled = await client.pull(reference)
        check_component_bytes(pulled.wasm, str(reference))
        return pulled

    pulled = run_registry(action())
    target = output_file or Path(_file_name(pulled, reference))
    target.write_bytes(pulled.wasm)
    click.echo(f"pulled {pulled.resolved.reference} into {target}")
    click.echo(f"digest: {pulled.resolved.reference.digest}")


def _file_name(pulled: oci.Pulled, reference: Reference) -> str:
    title = pulled.resolved.layer.annotations.get(oci.ANNOTATION_TITLE) or (
        pulled.resolved.annotations.get(oci.ANNOTATION_TITLE)
    )
    name = Path(title).name if title else ""  # never a path the registry chose
    if not name or name.startswith("."):
        name = reference.repository.rsplit("/", 1)[-1] + ".wasm"
    return name


# -- pinning a spec at apply time --------------------------------------------------------


async def pin_sources(
    text: str, base_dir: str, client: LatticeClient, options: RegistryOptions
) -> str:
    """``text`` with every component image pinned to bytes all hosts can reach."""
    pins: dict[str, str] = {}
    store = ArtifactStore(client.nc, client.subjects)
    async with oci.registry_client(options) as registry:
        for image in dict.fromkeys(component_images(text)):
            source = classify(image, base_dir)
            if isinstance(source, OciSource):
                progress(f"resolving {source.reference} ...")
                resolved = await registry.resolve(source.reference)
                pins[image] = str(resolved.reference)
            elif isinstance(source, FileSource | UrlSource):
                where = source.path if isinstance(source, FileSource) else source.url
                wasm = await _read_component(where, options.max_bytes)
                digest = await store.put(wasm)
                progress(f"uploaded {image} into the lattice as sha256:{digest[:12]}...")
                pins[image] = str(ObjectSource(digest))
    return pin_images(text, pins)


async def _read_component(source: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """A component the user named (any readable file, or a URL), checked to be one."""
    policy = LoadPolicy.of([Path("/")], max_bytes=max_bytes)
    return await fetch_component(source, policy=policy)


COMMANDS = (push, pull)
VERBS: dict[str, tuple[click.Command, ...]] = {}
