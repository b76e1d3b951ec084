"""An app's status as the acting controller sees it: one record per app, in JetStream.

The controller's pure ``reconcile()`` computes it, the controller stores it with
``SpecStore.put_status`` when it changes, and ``lattice status`` / ``lattice get apps``
read it back with ``SpecStore.get_status``: one model on both sides.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lattice.messages import Message

# "invalid": the stored spec cannot be used (the reason says why); the app runs nothing new.
AppState = Literal["deployed", "reconciling", "failed", "invalid"]


class ComponentStatus(Message):
    """One component (or placed provider) of an app: replicas wanted, running, where."""

    component: str
    component_id: str
    desired: int
    running: int
    hosts: dict[str, int] = Field(default_factory=dict)
    reason: str = ""


class AppStatus(Message):
    """``deployed`` when every component runs as wanted, ``reconciling`` while commands
    are under way, ``failed`` with ``reasons`` (a spec that does not load has no
    ``version`` and no components)."""

    app: str
    state: AppState
    version: str | None = None
    components: tuple[ComponentStatus, ...] = ()
    reasons: tuple[str, ...] = ()
