"""Errors raised while loading a deployment manifest.

Every error carries a list of :class:`Problem` values, each naming where in the user's
YAML it is (source, line and field path) and what is wrong, so a user can fix every
problem in one go rather than one per run::

    app.yaml:14: spec.components[1].traits[0].properties.instances: Input should be ...

The exception tree::

    ManifestError                  any problem with a manifest (``.problems``)
    ├── ManifestFileError          the file cannot be read
    ├── ManifestSyntaxError        not YAML: syntax error, duplicate key, empty document
    ├── ManifestSchemaError        YAML, but not a wadm Application: a wrong apiVersion or
    │                              kind, a missing, unknown or ill-typed field, a value out
    │                              of range, an unknown trait
    ├── ManifestReferenceError     well-formed parts that do not fit together: duplicate
    │                              component names, a link to a component that is not in
    │                              the app, no scaler or two scalers on a component
    └── UnsupportedFeatureError    valid wadm that this project cannot run: OCI images,
                                   capabilities other than the built-in providers, secrets

When problems of several kinds are found in one pass, the exception raised is of the
kind of the first problem in document order; ``problems`` holds all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, located by source name, line and field path."""

    message: str
    path: str = ""  # e.g. "spec.components[1].traits[0].properties.instances"
    line: int | None = None  # 1-based
    source: str = "<spec>"

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ManifestError(Exception):
    """A manifest was refused; ``problems`` lists every reason found, in document order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ManifestFileError(ManifestError):
    """The manifest file cannot be read."""


class ManifestSyntaxError(ManifestError):
    """The text is not a single YAML document (syntax error, duplicate key, empty)."""


class ManifestSchemaError(ManifestError):
    """The document is not a wadm ``Application`` manifest of the accepted shape."""


class ManifestReferenceError(ManifestError):
    """Parts of the manifest contradict each other or name what is not there."""


class UnsupportedFeatureError(ManifestError):
    """Valid wadm, but asking for something this project cannot run."""
