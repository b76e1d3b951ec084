"""Versioned deployment specs and app status, in JetStream KV.

Bucket ``P-L-specs`` holds, per app ``A``:

- ``A.v.<version>``: the spec text (YAML) as applied, never overwritten (a duplicate
  version is refused), so deploying an older version is a rollback;
- ``A.index``: the versions in the order they were put, and the deployed one;
- ``A.status``: the acting controller's view of the app.

App names and versions follow ``deploy.names`` (an app name has no '.', a version
has no '.' before a letter), and a key is read by its structure, not its suffix:
``A.v.1.index`` is a version's text, never an index. An index that cannot be
decoded is listed with its ``problem`` rather than failing the whole listing, so
one bad entry written straight into the bucket does not hide every other app.

The lattice stores text; validating it is the caller's job (``deploy.manifest``).
Writers publish ``spec_changed`` so controllers reload at once.
"""

from __future__ import annotations

import time

from nats.aio.client import Client
from pydantic import Field

from deploy.names import name_problem, version_problem
from lattice.app_status import AppStatus
from lattice.errors import BadMessage, KeyValueFailure, LatticeError
from lattice.events import SpecAction, SpecChange, SpecChanged, publish_event
from lattice.kv import Bucket, open_bucket
from lattice.messages import Message, decode, encode
from lattice.subjects import Subjects


class SpecError(LatticeError):
    """A spec operation was refused (duplicate version, unknown app or version)."""


class SpecVersion(Message):
    version: str
    put_at: float
    # Where relative component paths in the spec were meant to resolve.
    base_dir: str | None = None


class AppIndex(Message):
    name: str
    versions: list[SpecVersion] = Field(default_factory=list)
    deployed: str | None = None
    # Set by ``SpecStore.apps`` when the stored index cannot be read; never stored.
    problem: str | None = Field(default=None, exclude=True)

    @property
    def latest(self) -> str | None:
        return self.versions[-1].version if self.versions else None


class SpecStore:
    def __init__(self, nc: Client, subjects: Subjects, source: str = "client") -> None:
        self.nc = nc
        self.subjects = subjects
        self.source = source
        self._bucket: Bucket | None = None

    async def bucket(self) -> Bucket:
        if self._bucket is None:
            self._bucket = await open_bucket(self.nc, self.subjects.specs_bucket)
        return self._bucket

    async def _changed(self, app: str, action: SpecAction, version: str | None) -> None:
        change = SpecChange(app=app, action=action, version=version)
        await publish_event(self.nc, self.subjects, SpecChanged(source=self.source, data=change))

    async def index(self, app: str) -> tuple[AppIndex | None, int]:
        raw, revision = await (await self.bucket()).get_revision(index_key(app))
        return (decode(AppIndex, raw) if raw else None), revision

    async def _update_index(
        self, app: str, change: str, version: str | None = None, base_dir: str | None = None
    ) -> AppIndex:
        """Read-modify-write the index with compare-and-swap; retry on a race."""
        bucket = await self.bucket()
        for _ in range(20):
            index, revision = await self.index(app)
            index = _apply(index or AppIndex(name=app), app, change, version, base_dir)
            if await bucket.put_if(index_key(app), encode(index), revision) is not None:
                return index
        raise KeyValueFailure(f"could not update the index of {app}: too much contention")

    async def put(self, app: str, version: str, text: str, base_dir: str | None = None) -> AppIndex:
        problem = name_problem(app) or version_problem(version)
        if problem:
            raise SpecError(problem)
        bucket = await self.bucket()
        if await bucket.get(version_key(app, version)) is not None:
            raise SpecError(f"{app} version {version} exists already: bump the version")
        await bucket.put(version_key(app, version), text.encode())
        index = await self._update_index(app, "put", version, base_dir)
        await self._changed(app, "put", version)
        return index

    async def get(self, app: str, version: str | None = None) -> tuple[str, str]:
        """(version, text) of ``version``, else the deployed one, else the latest."""
        index, _ = await self.index(app)
        if index is None:
            raise SpecError(f"no app {app!r} (see `lattice get apps`)")
        version = version or index.deployed or index.latest
        raw = await (await self.bucket()).get(version_key(app, version)) if version else None
        if version is None or raw is None:
            raise SpecError(f"{app} has no version {version!r} (see `lattice versions {app}`)")
        return version, raw.decode()

    async def deploy(self, app: str, version: str | None = None) -> AppIndex:
        version, _ = await self.get(app, version)
        index = await self._update_index(app, "deploy", version)
        await self._changed(app, "deploy", version)
        return index

    async def undeploy(self, app: str) -> AppIndex:
        index = await self._update_index(app, "undeploy")
        await self._changed(app, "undeploy", None)
        return index

    async def delete(self, app: str) -> None:
        """Remove every key of ``app`` (found by listing: its index may be unreadable)."""
        bucket = await self.bucket()
        keys = [key for key in await bucket.keys() if app_of_key(key) == app]
        if index_key(app) not in keys:
            raise SpecError(f"no app {app!r}")
        for key in sorted(keys, key=lambda k: k == index_key(app)):  # the index last
            await bucket.remove(key)
        await self._changed(app, "delete", None)

    async def apps(self) -> list[AppIndex]:
        """Every app with an index; an unreadable index is listed with its ``problem``."""
        bucket = await self.bucket()
        found = []
        for key in await bucket.keys():
            app = app_of_key(key)
            if app is None or key != index_key(app):
                continue
            try:
                index, _ = await self.index(app)
            except BadMessage as exc:
                found.append(AppIndex(name=app, problem=f"its stored index is unreadable: {exc}"))
                continue
            if index is not None:
                found.append(index)
        return sorted(found, key=lambda i: i.name)

    # -- status, written by the acting controller ----------------------------------

    async def put_status(self, status: AppStatus) -> None:
        await (await self.bucket()).put(status_key(status.app), encode(_Status(data=status)))

    async def get_status(self, app: str) -> AppStatus | None:
        raw = await (await self.bucket()).get(status_key(app))
        return decode(_Status, raw).data if raw else None


# -- keys ------------------------------------------------------------------------------


def index_key(app: str) -> str:
    return f"{app}.index"


def status_key(app: str) -> str:
    return f"{app}.status"


def version_key(app: str, version: str) -> str:
    return f"{app}.v.{version}"


def app_of_key(key: str) -> str | None:
    """The app a key of the specs bucket belongs to: its first token (None if it has one).

    An app name never contains '.', so the first token is the app, whatever follows.
    """
    app, sep, _ = key.partition(".")
    return app if sep and app else None


class _Status(Message):
    data: AppStatus


def _apply(
    index: AppIndex, app: str, change: str, version: str | None, base_dir: str | None
) -> AppIndex:
    if change == "put":
        assert version is not None
        entry = SpecVersion(version=version, put_at=time.time(), base_dir=base_dir)
        versions = [*index.versions, entry]
        return index.model_copy(update={"versions": versions})
    if change == "deploy":
        return index.model_copy(update={"deployed": version})
    if change == "undeploy":
        if index.deployed is None and not index.versions:
            raise SpecError(f"no app {app!r}")
        return index.model_copy(update={"deployed": None})
    raise ValueError(change)
