"""Config and secrets as a manifest gives them to components, capabilities and links.

A config entry is inline (``{name, properties}``) or named (``{name}`` alone: one stored on
the lattice with ``lattice config put``, resolved where it is used, not here). Inline
configs of one place are merged, a later name winning, into the one flat mapping the
model holds (``merge_configs``); named ones are kept by name. A capability's config is
given inline only (``refuse_named``).

A component's secrets are wadm's ``{name, properties: {policy, key, field, version}}``,
each mapped to a ``SECRET_POLICY_TYPE`` entry of ``spec.policies`` that names a
``backend`` (``secret_refs``); capabilities and links take none (``refuse_secrets``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from deploy.errors import ManifestReferenceError, UnsupportedFeatureError
from deploy.locate import Loc, Report
from deploy.model import SecretRef
from deploy.schema import ConfigProperty, PolicyEntry, SecretEntry

# The policy type wadm gives secret backends (``spec.policies``).
SECRET_POLICY_TYPE = "policy.secret.wasmcloud.dev/v1alpha1"
Pairs = tuple[tuple[str, str], ...]


def merge_configs(
    configs: Iterable[tuple[list[ConfigProperty], Loc]],
) -> tuple[Pairs, tuple[str, ...]]:
    """Inline configs merged into one mapping (a later name wins), as sorted pairs;
    and the names of configs given without properties (stored on the lattice)."""
    merged: dict[str, str] = {}
    names: list[str] = []
    for entries, _ in configs:
        for entry in entries:
            if entry.properties is None:
                names.append(entry.name)
            else:
                merged.update(entry.properties)
    return tuple(sorted(merged.items())), tuple(names)


def refuse_secrets(report: Report, secrets: list[Any], loc: Loc) -> None:
    if secrets:
        report.add(UnsupportedFeatureError, loc, "secrets are not supported")


def secret_refs(
    report: Report,
    entries: Sequence[SecretEntry],
    loc: Loc,
    policies: Mapping[str, PolicyEntry],
) -> tuple[SecretRef, ...]:
    """wadm's secret references, each mapped to a secret policy of the manifest
    (``policies``: its ``spec.policies`` by name)."""
    refs = []
    seen: set[str] = set()
    for k, entry in enumerate(entries):
        where = (*loc, k)
        policy_name = entry.properties.policy
        policy = policies.get(policy_name)
        if entry.name in seen:
            report.add(ManifestReferenceError, where, f"duplicate secret '{entry.name}'")
        elif policy is None:
            message = f"secret '{entry.name}' is mapped to unknown policy '{policy_name}'"
            report.add(ManifestReferenceError, (*where, "properties", "policy"), message)
        elif policy.type != SECRET_POLICY_TYPE:
            message = (
                f"secret '{entry.name}' is mapped to policy '{policy_name}', which is not "
                f"a secret policy (type {SECRET_POLICY_TYPE})"
            )
            report.add(ManifestReferenceError, (*where, "properties", "policy"), message)
        elif "backend" not in policy.properties:
            message = f"policy '{policy_name}' of secret '{entry.name}' has no 'backend'"
            report.add(ManifestReferenceError, (*where, "properties", "policy"), message)
        seen.add(entry.name)
        props = entry.properties
        refs.append(SecretRef(entry.name, props.key, props.field, policy_name))
    return tuple(refs)


def refuse_named(report: Report, names: Sequence[str], loc: Loc, whose: str) -> None:
    for name in names:
        message = (
            f"config '{name}' has no properties: {whose} config is given here, not "
            "by name (named config on the lattice is for components and links)"
        )
        report.add(UnsupportedFeatureError, loc, message)
