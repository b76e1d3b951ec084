"""``lattice`` commands for apps (deployment specs): apply, versions, deploy, status, get apps,
and the ``app`` group: ``app validate FILE`` (offline) and ``app get NAME``.

Specs and their versions live in JetStream (``lattice.specs``); a controller
reconciles the deployed ones. A manifest without ``metadata.annotations.version`` is
stored under a generated, sortable version (``deploy.names.new_version``), as wadm does.
What wadm would warn about is printed (to stderr) and does not stop ``apply``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
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
from deploy.errors import ManifestError, Problem
from deploy.manifest import check_manifest_file, load_manifest
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
    checked = check_manifest_file(path)
    _warn(checked.warnings)
    spec = checked.spec
    text = path.read_text()
    base_dir = str(path.resolve().parent)
    registry = make_registry_options(kwargs)

    async def action(client: LatticeClient) -> dict[str, Any]:
        store = _store(client)
        await _refuse_existing(store, spec.name, spec.version)
        await admit(store, spec)  # reserved buckets, routes of other apps
        pinned = await pin_sources(text, base_dir, client, registry)
        # Still valid once pinned (and under the version generated if it had none).
        load_manifest(pinned, str(path), base_dir=base_dir, version=spec.version)
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


def _warn(warnings: Sequence[Problem]) -> None:
    for warning in warnings:
        echo(f"warning: {warning}", err=True)


@click.group("app")
def app_group() -> None:
    """Apps as manifests: validate one offline, print a stored one."""


@app_group.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@output_option
def app_validate(path: Path, output: str) -> None:
    """Check manifest FILE as `lattice apply` would, without a lattice.

    Prints wadm's warnings and every error with file:line; exits 1 on errors.
    """
    try:
        checked = check_manifest_file(path)
    except ManifestError as exc:
        if output == "json":
            problems = [{"level": "error", "message": str(p)} for p in exc.problems]
            click.echo(_dumps({"valid": False, "problems": problems}))
        else:
            for problem in exc.problems:
                echo(f"error: {problem}", err=True)
        sys.exit(1)
    spec = checked.spec
    given = dict(spec.annotations).get("version")
    if output == "json":
        warnings = [{"level": "warning", "message": str(p)} for p in checked.warnings]
        data = {"valid": True, "app": spec.name, "version": given, "problems": warnings}
        click.echo(_dumps(data))
        return
    _warn(checked.warnings)
    version = given or "none: generated at apply"
    echo(f"{path}: valid: app {spec.name}, version {version}")


@app_group.command("get")
@click.argument("app")
@click.option("--version", default=None, help="Version [default: deployed, else latest].")
@nats_options
@output_option
def app_get(app: str, version: str | None, output: str, nats: NatsFlags) -> None:
    """Print the stored manifest of APP (as applied, components pinned)."""
    stored_version, text = with_client(nats, lambda c: _store(c).get(app, version))
    if output == "json":
        click.echo(_dumps({"app": app, "version": stored_version, "manifest": text}))
    else:
        # Line by line, control characters escaped: the specs bucket is untrusted input.
        for line in text.splitlines():
            echo(line)


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def _json(status: AppStatus | None) -> dict[str, Any] | None:
    return status.model_dump(mode="json") if status else None


COMMANDS = (apply, versions, deploy_app, undeploy, delete, status, app_group)
VERBS = {"get": (get_apps,)}
