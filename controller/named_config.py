"""Named config (``lattice config put NAME KEY=VALUE...``) as a reconcile pass sees it.

A manifest may name a config instead of giving its values; the service reads the values
of the names the apps use and hands them to ``reconcile()`` as ``named_config`` (None:
not read). A component's names are passed on to its host, which layers them under the
inline config; a missing one keeps the component from starting. A link's names are
resolved here and layered under its inline config (``with_named_config``); a missing one
leaves the link out. Either way the reason (``missing_reason``) goes in the app's status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from controller.commands import Pairs
from deploy.model import LinkDecl


def missing_config(
    names: Sequence[str], named_config: Mapping[str, Mapping[str, str]] | None
) -> list[str]:
    """The ``names`` not stored (none when the configs were not read)."""
    if named_config is None:
        return []
    return [name for name in names if name not in named_config]


def missing_reason(missing: Sequence[str]) -> str:
    listed = ", ".join(f"'{name}'" for name in missing)
    return f"named config {listed} is not stored (lattice config put NAME KEY=VALUE...)"


def with_named_config(decl: LinkDecl, named: Mapping[str, Mapping[str, str]]) -> LinkDecl:
    """The link with its named configs layered under its inline config."""

    def layered(names: Sequence[str], inline: Pairs) -> Pairs:
        merged: dict[str, str] = {}
        for name in names:
            merged.update(named[name])
        return tuple(sorted({**merged, **dict(inline)}.items()))

    return replace(
        decl,
        source_config=layered(decl.source_config_names, decl.source_config),
        target_config=layered(decl.target_config_names, decl.target_config),
    )
