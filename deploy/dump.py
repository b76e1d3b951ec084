"""An ``AppSpec`` as JSON-able data and back: ``spec_from_dump(dump_spec(s)) == s``.

Pairs (config, requirements, annotations) become objects; everything else keeps
its shape. The lattice stores the manifest text as applied, not this form.
"""

from __future__ import annotations

from typing import Any

from deploy.model import (
    AppSpec,
    CapabilityDecl,
    ComponentDecl,
    LinkDecl,
    Scaler,
    SecretRef,
    Spread,
)

Pairs = tuple[tuple[str, str], ...]


def dump_spec(spec: AppSpec) -> dict[str, Any]:
    """A JSON-able dict of ``spec`` (pairs become objects); ``spec_from_dump`` inverts it."""
    return {
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "annotations": dict(spec.annotations),
        "components": [_dump_component(c) for c in spec.components],
        "capabilities": [
            {
                "name": c.name,
                "provider": c.provider,
                "config": dict(c.config),
                "scaler": _dump_scaler(c.scaler),
                "image": c.image,
            }
            for c in spec.capabilities
        ],
        "links": [_dump_link(link) for link in spec.links],
    }


def spec_from_dump(data: dict[str, Any]) -> AppSpec:
    """The ``AppSpec`` that ``dump_spec`` turned into ``data``."""
    return AppSpec(
        name=data["name"],
        version=data["version"],
        description=data.get("description", ""),
        annotations=pairs(data.get("annotations", {})),
        components=tuple(_undump_component(c) for c in data.get("components", [])),
        capabilities=tuple(
            CapabilityDecl(
                c["name"],
                c["provider"],
                pairs(c.get("config", {})),
                _undump_scaler(c.get("scaler")),
                c.get("image", ""),
            )
            for c in data.get("capabilities", [])
        ),
        links=tuple(_undump_link(link) for link in data.get("links", [])),
    )


def pairs(mapping: dict[str, Any]) -> Pairs:
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


def _dump_scaler(scaler: Scaler | None) -> dict[str, Any] | None:
    if scaler is None:
        return None
    spreads = [
        {"name": s.name, "requirements": dict(s.requirements), "weight": s.weight}
        for s in scaler.spreads
    ]
    return {"kind": scaler.kind, "instances": scaler.instances, "spreads": spreads}


def _undump_scaler(data: dict[str, Any] | None) -> Scaler | None:
    if data is None:
        return None
    spreads = tuple(
        Spread(x["name"], pairs(x.get("requirements", {})), x.get("weight", 100))
        for x in data.get("spreads", [])
    )
    return Scaler(data["kind"], data["instances"], spreads)


def _dump_component(c: ComponentDecl) -> dict[str, Any]:
    return {
        "name": c.name,
        "source": c.source,
        "sha256": c.sha256,
        "config": dict(c.config),
        "scaler": _dump_scaler(c.scaler),
        "max_concurrency": c.max_concurrency,
        "config_names": list(c.config_names),
        "secrets": [
            {"name": s.name, "key": s.key, "field": s.field, "policy": s.policy} for s in c.secrets
        ],
    }


def _undump_component(data: dict[str, Any]) -> ComponentDecl:
    return ComponentDecl(
        name=data["name"],
        source=data["source"],
        sha256=data.get("sha256"),
        config=pairs(data.get("config", {})),
        scaler=_undump_scaler(data.get("scaler")),
        max_concurrency=data.get("max_concurrency"),
        config_names=tuple(data.get("config_names", [])),
        secrets=tuple(
            SecretRef(s["name"], s["key"], s.get("field"), s.get("policy", ""))
            for s in data.get("secrets", [])
        ),
    )


def _dump_link(link: LinkDecl) -> dict[str, Any]:
    return {
        "source": link.source,
        "target": link.target,
        "namespace": link.namespace,
        "package": link.package,
        "interfaces": list(link.interfaces),
        "name": link.name,
        "source_config": dict(link.source_config),
        "target_config": dict(link.target_config),
        "source_config_names": list(link.source_config_names),
        "target_config_names": list(link.target_config_names),
    }


def _undump_link(data: dict[str, Any]) -> LinkDecl:
    return LinkDecl(
        source=data["source"],
        target=data["target"],
        namespace=data["namespace"],
        package=data["package"],
        interfaces=tuple(data["interfaces"]),
        name=data.get("name", "default"),
        source_config=pairs(data.get("source_config", {})),
        target_config=pairs(data.get("target_config", {})),
        source_config_names=tuple(data.get("source_config_names", [])),
        target_config_names=tuple(data.get("target_config_names", [])),
    )
