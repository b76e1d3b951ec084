"""Deployed specs as the controller loads them: untrusted input, one app at a time.

The specs bucket can be written without ``lattice apply`` (by anyone with write access
to it), and every controller, including one started later, loads every deployed spec.
So a spec that cannot be read, parsed (``deploy.manifest`` bounds size and nesting) or
admitted (``controller.admission``), whatever it raises, RecursionError included,
becomes a reason for its own app only; the other apps load as usual.

A failure of NATS itself (a retryable ``LatticeError``) is not the spec's fault: the
app keeps the spec loaded before, and the load is marked incomplete so the caller
reads again; with no spec loaded before, the load fails as a whole rather than leave
the app out (which would take its replicas for orphans).

A parse is cached by app, version, base dir and the text's digest, so an unchanged
spec, good or bad, is parsed once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from controller.admission import SpecRefused, lattice_problems, parse_stored
from deploy.errors import ManifestError
from deploy.manifest import spec_digest
from deploy.model import AppSpec
from lattice.errors import LatticeError
from lattice.specs import AppIndex, SpecStore

log = logging.getLogger(__name__)

# A reason longer than this is cut: it is shown in status and stored with it.
MAX_REASON = 2000

_Key = tuple[str, str, str | None, str]


@dataclass(frozen=True)
class LoadedSpecs:
    apps: tuple[AppSpec, ...]
    errors: dict[str, str]  # app -> why its deployed spec cannot be used
    complete: bool  # False: some read failed transiently (previous specs kept)


class SpecLoader:
    def __init__(self, store: SpecStore) -> None:
        self.store = store
        self._cache: dict[_Key, AppSpec | str] = {}

    async def load(self, previous: Sequence[AppSpec]) -> LoadedSpecs:
        """Every deployed app's spec, or the reason it cannot be used."""
        apps = []
        errors = {}
        complete = True
        cache: dict[_Key, AppSpec | str] = {}
        for index in await self.store.apps():
            if index.problem:
                errors[index.name] = index.problem
                continue
            if index.deployed is None:
                continue
            try:
                loaded = await self._load(index, cache)
            except LatticeError as exc:
                if not exc.retryable:
                    loaded = _cut(str(exc))
                else:
                    before = next((a for a in previous if a.name == index.name), None)
                    if before is None:
                        raise
                    loaded, complete = before, False
            except Exception as exc:  # e.g. a text that is not UTF-8
                loaded = _cut(f"its spec cannot be read: {type(exc).__name__}: {exc}")
            if isinstance(loaded, str):
                errors[index.name] = loaded
            else:
                apps.append(loaded)
        self._cache = cache  # only what is deployed now stays cached
        return LoadedSpecs(tuple(apps), errors, complete)

    async def _load(self, index: AppIndex, cache: dict[_Key, AppSpec | str]) -> AppSpec | str:
        version, text = await self.store.get(index.name, index.deployed)
        base_dir = next((v.base_dir for v in index.versions if v.version == version), None)
        key = (index.name, version, base_dir, spec_digest(text))
        loaded = self._cache.get(key)
        if loaded is None:
            loaded = self._parse(index.name, version, text, base_dir)
        cache[key] = loaded
        return loaded

    def _parse(self, app: str, version: str, text: str, base_dir: str | None) -> AppSpec | str:
        try:
            spec = parse_stored(app, version, text, base_dir)
            problems = lattice_problems(spec, self.store.subjects)
            if problems:
                raise SpecRefused(app, problems)
            return spec
        except (ManifestError, SpecRefused) as exc:
            return _cut(str(exc))
        except Exception as exc:  # RecursionError, MemoryError...: the spec's, not ours
            log.warning("stored spec %s@%s cannot be loaded", app, version, exc_info=True)
            return _cut(f"its spec cannot be loaded: {type(exc).__name__}: {exc}")


def _cut(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + " ..."
