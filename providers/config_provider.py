"""The config provider: ``wasi:config/store`` values from the component's spec and links.

Values are plain strings. Named configs (stored on the lattice) and inline
values merge in order, later ones winning, into one mapping per component.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def merge_config(layers: Iterable[Mapping[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(layer)
    return merged


class ComponentConfig:
    """Read-only view a component gets of its own configuration."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def get_all(self) -> list[tuple[str, str]]:
        return sorted(self._values.items())
