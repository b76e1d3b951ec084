"""Annotation keys on what the controller runs: components, provider processes, links.

The controller writes them into scale and provider requests and links; hosts report
them back in their heartbeats, so the controller recognises its own replicas (``app``,
``revision``) after a restart. Anything without ``app`` was made by hand and is left
alone.
"""

from __future__ import annotations

APP = "app"  # the app (deployment spec) a replica, provider or link belongs to
REVISION = "revision"  # what the replica should run; a new one rolls replicas over
VERSION = "version"  # the spec version that asked for it (informational)
MANAGED_BY = "managed-by"  # who manages it (the controller's name)
