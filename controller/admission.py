"""What a spec must satisfy beyond its own text: checks against the lattice.

``deploy.manifest`` checks a manifest on its own. A spec also shares the lattice with
other apps and with the lattice's own state, so:

- a keyvalue link may not name one of the lattice's buckets (links, config, specs,
  lease, of any lattice: ``Subjects.owns_bucket``), which would let the app read
  and rewrite every spec, link and lease;
- an HTTP route (path prefix and Host) claimed by another deployed app is that app's:
  the spec is refused, naming the owner;
- a stored spec must be what its key says: the app and version in its text are the
  ones it is stored under (an app cannot deploy another app's components).

``admit`` runs these before ``lattice apply`` stores a spec. The controller runs
``parse_stored`` and ``lattice_problems`` on every spec it loads, since the bucket
can be written without the CLI, and resolves route ownership itself
(``controller.links.route_owners``): a spec it cannot use marks only its own app
invalid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from deploy.manifest import load_manifest
from deploy.model import AppSpec
from deploy.names import kv_buckets, routes
from lattice.specs import SpecError, SpecStore
from lattice.subjects import Subjects


class SpecRefused(SpecError):
    """A spec conflicts with the lattice or with another app; ``problems`` says how."""

    def __init__(self, app: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"{app} refused: " + "; ".join(self.problems))


def parse_stored(app: str, version: str, text: str, base_dir: str | None) -> AppSpec:
    """The spec stored as ``app`` version ``version`` (a ``ManifestError`` if it is not one)."""
    # A manifest without a version was stored under the one generated at apply.
    spec = load_manifest(text, f"{app}@{version}", base_dir=base_dir, version=version)
    if (spec.name, spec.version) != (app, version):
        raise SpecRefused(
            app,
            [f"stored as {app} {version}, but its text is {spec.name} {spec.version}"],
        )
    return spec


def lattice_problems(spec: AppSpec, subjects: Subjects) -> list[str]:
    """Why ``spec`` may not run on this lattice whatever the other apps are."""
    return [
        f"link {decl.source} -> {decl.target}: bucket '{bucket}' is reserved "
        f"(names starting with '{subjects.prefix}-' hold the lattice's own state)"
        for bucket, decl in kv_buckets(spec)
        if subjects.owns_bucket(bucket)
    ]


def route_conflicts(spec: AppSpec, others: Iterable[AppSpec]) -> list[str]:
    """The routes of ``spec`` that another app claims already."""
    mine = dict(routes(spec))
    problems = []
    for other in others:
        if other.name == spec.name:
            continue
        for key, _ in routes(other):
            if key in mine:
                problems.append(
                    f"HTTP route {key} (to '{mine[key].target}') is owned by app "
                    f"'{other.name}': choose another path or host"
                )
    return problems


async def deployed_specs(store: SpecStore) -> list[AppSpec]:
    """The deployed spec of every app whose spec can be read (others are skipped)."""
    specs = []
    for index in await store.apps():
        if index.deployed is None or index.problem:
            continue
        base_dir = next((v.base_dir for v in index.versions if v.version == index.deployed), None)
        try:
            version, text = await store.get(index.name, index.deployed)
            specs.append(parse_stored(index.name, version, text, base_dir))
        except Exception:  # an unusable spec claims nothing; its status says why
            continue
    return specs


async def admit(store: SpecStore, spec: AppSpec) -> None:
    """Raise ``SpecRefused`` if ``spec`` may not be stored on ``store``'s lattice."""
    problems = lattice_problems(spec, store.subjects)
    problems += route_conflicts(spec, await deployed_specs(store))
    if problems:
        raise SpecRefused(spec.name, problems)
