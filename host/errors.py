"""Errors raised by the host runtime.

Every failure the host reports is one of these, so callers can tell a bad
input (fix the component or the spec) from a transient fault (retrying helps)::

    HostError
    ├── ComponentLoadError          the component cannot be loaded at all
    │   ├── FetchError              the source (file or URL) cannot be read   (retryable)
    │   ├── SourceRefused           the source is not allowed: outside the artifact
    │   │                           dirs, not a regular file, over the size cap, a redirect
    │   ├── DigestMismatch          the bytes do not match the sha256 pin
    │   └── InvalidComponent        not a component: core module, truncated, garbage
    ├── LimitRefused                the request asks for more than this host allows
    ├── LinkError                   imports that nothing provides to this component
    ├── UnknownComponent            no component with that id runs on this host
    ├── MissingConfig               a scale request names config that does not exist
    ├── HttpUnavailable             the host cannot listen on its HTTP address
    ├── PolicyDenied                the host's policy refuses to start this
    ├── PolicyFileError             the policy file cannot be read or is invalid
    ├── LimitExceeded               over one of the host's bounds (labels, components...)
    └── CallError                   one call failed; the host keeps serving
        ├── ComponentTrapped        the guest trapped (bug in the component)
        ├── DeadlineExceeded        the call ran past its execution deadline
        ├── ResourceLimitExceeded   the guest hit its memory cap, or handed the host
        │                           more than wasmtime copies out of a guest at once
        └── Overloaded              no instance became free in time            (retryable)

Load errors never carry a digest or bytes of the source: the control interface
must not become a way to read the host's files.

Errors from wasmtime are translated at the boundary (``host.runtime.engine`` and
``host.runtime.pool``); nothing above them sees a ``wasmtime`` exception.
"""

from __future__ import annotations


class HostError(Exception):
    """Base of every error the host runtime raises."""

    retryable: bool = False


class ComponentLoadError(HostError):
    """The component could not be loaded."""


class FetchError(ComponentLoadError):
    """The component source could not be read (missing file, HTTP error)."""

    retryable = True


class SourceRefused(ComponentLoadError):
    """The source is not allowed: retrying the same request cannot help."""


class DigestMismatch(ComponentLoadError):
    """The component's bytes do not match the pinned sha256 digest.

    The message names neither digest: the actual one would let whoever can send
    a pin learn the digest of a file, and repeating the pin adds nothing.
    """

    def __init__(self, source: str) -> None:
        super().__init__(f"refusing {source}: its sha256 does not match the pinned digest")


class InvalidComponent(ComponentLoadError):
    """The bytes are not a valid WebAssembly component."""


class LimitRefused(HostError):
    """The request asks for more than this host allows (concurrency, worker threads)."""


class LinkError(HostError):
    """The component imports interfaces that nothing on this host provides to it."""

    def __init__(self, component_id: str, missing: list[str]) -> None:
        names = ", ".join(missing)
        super().__init__(
            f"component {component_id!r} imports interfaces that nothing provides to it: "
            f"{names} (link them to a provider or component)"
        )
        self.missing = missing


class UnknownComponent(HostError):
    """No component with this id runs on this host."""


class MissingConfig(HostError):
    """A scale request names a named config that is not in the lattice."""

    def __init__(self, component_id: str, name: str) -> None:
        super().__init__(
            f"component {component_id!r} uses named config {name!r}, which does not exist "
            "(create it with `lattice config put`)"
        )
        self.name = name


class HttpUnavailable(HostError):
    """The host cannot serve HTTP on its address (the port is taken, say)."""

    def __init__(
        self, host: str, port: int, reason: str, hint: str = "choose another with --http-port"
    ) -> None:
        super().__init__(f"cannot serve HTTP on {host}:{port}: {reason} ({hint})")
        self.host = host
        self.port = port
        self.reason = reason


class PolicyDenied(HostError):
    """The host's policy (file or service, ``host.policy``) refuses to start something."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"denied by policy: {reason}")
        self.reason = reason


class PolicyFileError(HostError):
    """The policy file cannot be read, parsed or validated."""


class LimitExceeded(HostError):
    """A request would take the host over one of its bounds (``host.bounds.HostBounds``)."""


class CallError(HostError):
    """A single call into a component failed; the instance was discarded."""


class ComponentTrapped(CallError):
    """The guest trapped (unreachable, out-of-bounds access, a failed host call...)."""


class DeadlineExceeded(CallError):
    """The call ran longer than its execution deadline and was interrupted."""


class ResourceLimitExceeded(CallError):
    """The guest ran into its linear-memory cap, or wasmtime's limit on a call's copy-out."""


class Overloaded(CallError):
    """Every instance stayed busy until the call's deadline."""

    retryable = True
