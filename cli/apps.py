"""``lattice`` commands for deployment specs: apply, versions, deploy, status, drain."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import click

from catalog import annotations as annotation
from cli.artifacts import make_registry_options, pin_sources, registry_errors, registry_options
from cli.common import (
    emit,
    make_nats_options,
    nats_options,
    output_option,
    print_table,
    progress,
    resolve_host,
    run,
    with_client,
)
from deploy.errors import ManifestError
from deploy.manifest import load_manifest, load_manifest_file
from lattice.app_status import AppStatus
from lattice.client import LatticeClient
from lattice.messages import HostInventory
from lattice.specs import AppIndex, SpecError, SpecStore


def _store(client: LatticeClient) -> SpecStore:
    return SpecStore(client.nc, client.subjects, source="lattice-cli")


@click.command()
@click.option("-f", "--file", "path", required=True, type=click.Path(path_type=Path))
@click.option("--no-deploy", is_flag=True, help="Store the version without deploying it.")
@nats_options
@registry_options
@output_option
def apply(path: Path, no_deploy: bool, output: str, lattice_name: str, **kwargs: Any) -> None:
    """Validate a spec (wadm OAM Application), store it as a new version and deploy it.

    Components are pinned first: a registry tag to its digest, a file or URL to a copy
    in the lattice's object store, so every host runs the same bytes.
    """
    try:
        spec = load_manifest_file(path)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc
    text = path.read_text()
    base_dir = str(path.resolve().parent)
    nats = make_nats_options(kwargs, "lattice-cli")
    registry = make_registry_options(kwargs)

    async def action(client: LatticeClient) -> dict[str, Any]:
        store = _store(client)
        await _refuse_existing(store, spec.name, spec.version)
        pinned = await pin_sources(text, base_dir, client, registry)
        load_manifest(pinned, str(path), base_dir=base_dir)  # still valid once pinned
        await store.put(spec.name, spec.version, pinned, base_dir=base_dir)
        if not no_deploy:
            await store.deploy(spec.name, spec.version)
        return {"app": spec.name, "version": spec.version, "deployed": not no_deploy}

    with registry_errors():
        result = run(with_client(nats, lattice_name, action))
    verb = "stored" if no_deploy else "deployed"
    emit(
        output,
        result,
        lambda: click.echo(
            f"{result['app']} {result['version']} {verb} (see `lattice status {result['app']}`)"
        ),
    )


async def _refuse_existing(store: SpecStore, app: str, version: str) -> None:
    """Refuse a stored version before uploading anything for it."""
    try:
        await store.get(app, version)
    except SpecError:
        return  # not stored yet
    raise SpecError(f"{app} version {version} exists already: bump the version")


@click.command("versions")
@click.argument("app")
@nats_options
@output_option
def versions(app: str, output: str, lattice_name: str, **kwargs: Any) -> None:
    """List the stored versions of APP."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> Any:
        index, _ = await _store(client).index(app)
        if index is None:
            raise click.ClickException(f"no app {app!r} (see `lattice get apps`)")
        return index

    index = run(with_client(nats, lattice_name, action))
    emit(
        output,
        index.model_dump(mode="json"),
        lambda: print_table(
            ["VERSION", "STORED", "DEPLOYED"],
            [
                [
                    v.version,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.put_at)),
                    "*" if v.version == index.deployed else "",
                ]
                for v in index.versions
            ],
        ),
    )


@click.command("deploy")
@click.argument("app")
@click.option("--version", default=None, help="Version to deploy [default: latest].")
@nats_options
def deploy_app(app: str, version: str | None, lattice_name: str, **kwargs: Any) -> None:
    """Deploy APP (an older --version is a rollback)."""
    nats = make_nats_options(kwargs, "lattice-cli")
    index = run(with_client(nats, lattice_name, lambda c: _store(c).deploy(app, version)))
    click.echo(f"{app} {index.deployed} deployed")


@click.command()
@click.argument("app")
@nats_options
def undeploy(app: str, lattice_name: str, **kwargs: Any) -> None:
    """Stop running APP (its versions stay stored)."""
    nats = make_nats_options(kwargs, "lattice-cli")
    run(with_client(nats, lattice_name, lambda c: _store(c).undeploy(app)))
    click.echo(f"{app} undeployed")


@click.command()
@click.argument("app")
@nats_options
def delete(app: str, lattice_name: str, **kwargs: Any) -> None:
    """Undeploy APP and delete every stored version."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> None:
        store = _store(client)
        await store.undeploy(app)
        await store.delete(app)

    run(with_client(nats, lattice_name, action))
    click.echo(f"{app} deleted")


@click.command()
@click.argument("app")
@nats_options
@output_option
def status(app: str, output: str, lattice_name: str, **kwargs: Any) -> None:
    """Status of APP per component, with reasons, as the acting controller sees it."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> tuple[AppIndex, AppStatus | None]:
        store = _store(client)
        index, _ = await store.index(app)
        if index is None:
            raise click.ClickException(f"no app {app!r} (see `lattice get apps`)")
        return index, await store.get_status(app)

    index, record = run(with_client(nats, lattice_name, action))
    data = {"app": app, "deployed": index.deployed, "status": _json(record)}

    def table() -> None:
        state: str = record.state if record else "unknown (no controller has reported)"
        if index.deployed is None:
            state = "undeployed"
        click.echo(f"{app} {index.deployed or '-'}: {state}")
        for reason in record.reasons if record else ():
            click.echo(f"  ! {reason}")
        rows = [
            [
                c.component,
                c.component_id,
                f"{c.running}/{c.desired}",
                ",".join(f"{h}:{n}" for h, n in sorted(c.hosts.items())) or "-",
                c.reason,
            ]
            for c in (record.components if record else ())
        ]
        print_table(["COMPONENT", "ID", "RUNNING", "HOSTS", "REASON"], rows)

    emit(output, data, table)


@click.command("apps")
@nats_options
@output_option
def get_apps(output: str, lattice_name: str, **kwargs: Any) -> None:
    """List apps, their versions and state."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> list[tuple[AppIndex, AppStatus | None]]:
        store = _store(client)
        return [(i, await store.get_status(i.name)) for i in await store.apps()]

    apps = run(with_client(nats, lattice_name, action))
    emit(
        output,
        [{"app": i.model_dump(mode="json"), "status": _json(s)} for i, s in apps],
        lambda: print_table(
            ["APP", "DEPLOYED", "LATEST", "STATE"],
            [
                [
                    i.name,
                    i.deployed or "-",
                    i.latest or "-",
                    (s.state if s else "-") if i.deployed else "undeployed",
                ]
                for i, s in apps
            ],
        ),
    )


@click.command()
@click.argument("host_id")
@click.option("--stop/--no-stop", default=True, help="Stop the host once it is empty.")
@click.option("--timeout", default=120.0, show_default=True)
@nats_options
def drain(host_id: str, stop: bool, timeout: float, lattice_name: str, **kwargs: Any) -> None:
    """Move HOST_ID's replicas elsewhere (the controller does), then stop it."""
    nats = make_nats_options(kwargs, "lattice-cli")

    async def action(client: LatticeClient) -> str:
        resolved = await resolve_host(client, host_id)
        await client.drain_host(resolved)
        progress(f"draining {resolved}: waiting for its replicas to move ...")
        deadline = time.monotonic() + timeout
        while _still_placed(await client.inventory(resolved)):
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"{resolved} still runs components or placed providers after {timeout} s"
                )
            await asyncio.sleep(0.2)
        if stop:
            await client.stop_host(resolved)
        return resolved

    resolved = run(with_client(nats, lattice_name, action))
    click.echo(f"{resolved} drained" + (" and stopping" if stop else ""))


def _still_placed(inventory: HostInventory) -> bool:
    """Replicas the controller has yet to move: components, and providers a spec placed
    (a provider started by hand stays: no controller would move it)."""
    return bool(inventory.components) or any(
        p.annotations.get(annotation.APP) for p in inventory.providers
    )


def _json(status: AppStatus | None) -> dict[str, Any] | None:
    return status.model_dump(mode="json") if status else None


COMMANDS = (apply, versions, deploy_app, undeploy, delete, status, drain)
APP_GET_COMMANDS = (get_apps,)
