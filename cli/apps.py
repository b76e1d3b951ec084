"""``lattice`` commands for apps (deployment specs): apply, versions, deploy, status, get apps.

Specs and their versions live in JetStream (``lattice.specs``); a controller
reconciles the deployed ones.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from cli.artifacts import make_registry_options, pin_sources, registry_errors, registry_options
from cli.common import (
    echo,
    emit,
    nats_options,
    output_option,
    print_table,
    with_client,
)
from controller.admission import admit
from deploy.manifest import load_manifest, load_manifest_file
from lattice.app_status import AppStatus
from lattice.client import LatticeClient
from lattice.options import NatsFlags
from lattice.specs import AppIndex, SpecError, SpecStore


def _store(client: LatticeClient) -> SpecStore:
    return SpecStore(client.nc, client.subjects, source="lattice-cli")


@click.command()
@click.option("-f", "--file", "path", required=True, type=click.Path(path_type=Path))
@click.option("--no-deploy", is_flag=True, help="Store the version without deploying it.")
@nats_options
@registry_options
@output_option
def apply(path: Path, no_deploy: bool, output: str, nats: NatsFlags, **kwargs: Any) -> None:
    """Validate a spec (wadm OAM Application), store it as a new version and deploy it.

    Components are pinned first: a registry tag to its digest, a file or URL to a copy
    in the lattice's object store, so every host runs the same bytes.
    """
    spec = load_manifest_file(path)
    text = path.read_text()
    base_dir = str(path.resolve().parent)
    registry = make_registry_options(kwargs)

    async def action(client: LatticeClient) -> dict[str, Any]:
        store = _store(client)
        await _refuse_existing(store, spec.name, spec.version)
        await admit(store, spec)  # reserved buckets, routes of other apps
        pinned = await pin_sources(text, base_dir, client, registry)
        load_manifest(pinned, str(path), base_dir=base_dir)  # still valid once pinned
        await store.put(spec.name, spec.version, pinned, base_dir=base_dir)
        if not no_deploy:
            await store.deploy(spec.name, spec.version)
        return {"app": spec.name, "version": spec.version, "deployed": not no_deploy}

    with registry_errors():
        result = with_client(nats, action)
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
def versions(app: str, output: str, nats: NatsFlags) -> None:
    """List the stored versions of APP."""

    async def action(client: LatticeClient) -> Any:
        index, _ = await _store(client).index(app)
        if index is None:
            raise click.ClickException(f"no app {app!r} (see `lattice get apps`)")
        return index

    index = with_client(nats, action)
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
def deploy_app(app: str, version: str | None, nats: NatsFlags) -> None:
    """Deploy APP (an older --version is a rollback)."""
    index = with_client(nats, lambda c: _store(c).deploy(app, version))
    click.echo(f"{app} {index.deployed} deployed")


@click.command()
@click.argument("app")
@nats_options
def undeploy(app: str, nats: NatsFlags) -> None:
    """Stop running APP (its versions stay stored)."""
    with_client(nats, lambda c: _store(c).undeploy(app))
    click.echo(f"{app} undeployed")


@click.command()
@click.argument("app")
@nats_options
def delete(app: str, nats: NatsFlags) -> None:
    """Undeploy APP and delete every stored version."""

    async def action(client: LatticeClient) -> None:
        store = _store(client)
        await store.undeploy(app)
        await store.delete(app)

    with_client(nats, action)
    click.echo(f"{app} deleted")


@click.command()
@click.argument("app")
@nats_options
@output_option
def status(app: str, output: str, nats: NatsFlags) -> None:
    """Status of APP per component, with reasons, as the acting controller sees it."""

    async def action(client: LatticeClient) -> tuple[AppIndex, AppStatus | None]:
        store = _store(client)
        index, _ = await store.index(app)
        if index is None:
            raise click.ClickException(f"no app {app!r} (see `lattice get apps`)")
        return index, await store.get_status(app)

    index, record = with_client(nats, action)
    data = {"app": app, "deployed": index.deployed, "status": _json(record)}

    def table() -> None:
        state: str = record.state if record else "unknown (no controller has reported)"
        if index.deployed is None:
            state = "undeployed"
        echo(f"{app} {index.deployed or '-'}: {state}")
        for reason in record.reasons if record else ():
            echo(f"  ! {reason}")
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
def get_apps(output: str, nats: NatsFlags) -> None:
    """List apps, their versions and state."""

    async def action(client: LatticeClient) -> list[tuple[AppIndex, AppStatus | None]]:
        store = _store(client)
        return [(i, await store.get_status(i.name)) for i in await store.apps()]

    apps = with_client(nats, action)
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


def _json(status: AppStatus | None) -> dict[str, Any] | None:
    return status.model_dump(mode="json") if status else None


COMMANDS = (apply, versions, deploy_app, undeploy, delete, status)
VERBS = {"get": (get_apps,)}
