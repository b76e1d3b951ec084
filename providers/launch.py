"""How a host hands a placed provider its config: checked, then as environment variables.

A host's supervisor (``host.supervisor``) starts ``python -m providers.run KIND`` with
the environment ``launch_env`` returns. What each kind takes, and which variable carries
each key, is the kind's entry in ``catalog.kinds``. Importing this module loads neither
click nor a provider's backend, so a host pays for neither.
"""

from __future__ import annotations

from collections.abc import Mapping

from catalog.kinds import PLACED_KINDS, placed_kind


class BadProviderConfig(ValueError):
    """A StartProvider names an unknown kind or config the kind does not take."""


def launch_env(kind: str, config: Mapping[str, str]) -> dict[str, str]:
    """The environment that hands ``config`` to a ``kind`` process; checks it first."""
    spec = placed_kind(kind)
    if spec is None:
        known = ", ".join(sorted(PLACED_KINDS))
        raise BadProviderConfig(f"unknown provider kind {kind!r} (known: {known})")
    env = {key.name: key.env for key in spec.config}
    unknown = sorted(set(config) - set(env))
    if unknown:
        raise BadProviderConfig(
            f"{kind} takes no config {', '.join(unknown)} (it takes {', '.join(sorted(env))})"
        )
    missing = [key for key in spec.required_config if not config.get(key)]
    if missing:
        raise BadProviderConfig(f"{kind} needs config {', '.join(missing)}")
    return {env[key]: value for key, value in config.items()}
