"""Every NATS subject and JetStream bucket name the project uses, built in one place.

Layout (``P`` = prefix, default ``wasmlattice``; ``L`` = lattice name, default
``default``; several lattices share one NATS by name)::

    P.L.ctl.host.<host-id>.<operation>   control interface of one host (request/reply)
    P.L.ctl.ping                         every host answers (scatter/gather)
    P.L.evt.<event-type>.<source-id>     lattice events, heartbeats included; the last
                                         token names the publisher (a host publishes
                                         only under its own id: see lattice.auth)
    P.L.rpc.<component-id>.<interface>   component invocations (queue group per component)
    P.L.prov.<provider-id>.<operation>   out-of-process providers (queue group per provider)
    P.L.policy                           a policy service's decisions (request/reply)

JetStream KV buckets: ``P-L-links``, ``P-L-config``, ``P-L-specs``, ``P-L-lease``,
``P-L-secrets``; the
object store ``P-L-artifacts`` (component bytes, named by digest). Every bucket named
``P-...`` is reserved to lattices (``owns_bucket``): a component's keyvalue link may not
name one, whatever its lattice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "wasmlattice"
DEFAULT_LATTICE = "default"

_TOKEN = re.compile(r"^[-_a-zA-Z0-9]+\Z")


def check_token(kind: str, value: str) -> str:
    """A subject token must not contain '.', '*', '>' or whitespace."""
    if not _TOKEN.match(value):
        raise ValueError(f"invalid {kind} {value!r}: use letters, digits, '-' and '_'")
    return value


@dataclass(frozen=True)
class Subjects:
    lattice: str = DEFAULT_LATTICE
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        check_token("lattice name", self.lattice)
        check_token("subject prefix", self.prefix)

    @property
    def root(self) -> str:
        return f"{self.prefix}.{self.lattice}"

    # -- control interface -------------------------------------------------

    def host_control(self, host_id: str, operation: str) -> str:
        return f"{self.root}.ctl.host.{check_token('host id', host_id)}.{operation}"

    def host_control_all(self, host_id: str) -> str:
        return f"{self.root}.ctl.host.{check_token('host id', host_id)}.>"

    def operation_of(self, subject: str) -> str:
        """The operation named by a control subject (its tokens after the host id)."""
        return ".".join(subject.split(".")[5:])

    @property
    def ping(self) -> str:
        return f"{self.root}.ctl.ping"

    # -- events ------------------------------------------------------------

    def event(self, event_type: str, source: str) -> str:
        """Where ``source`` (a host id, controller id, "client") publishes an event."""
        kind = check_token("event type", event_type)
        return f"{self.root}.evt.{kind}.{check_token('event source', source)}"

    def events(self, event_type: str) -> str:
        """Subscribe to one event type from every source."""
        return f"{self.root}.evt.{check_token('event type', event_type)}.*"

    def events_from(self, source: str) -> str:
        """Every event type ``source`` may publish (a host's permission)."""
        return f"{self.root}.evt.*.{check_token('event source', source)}"

    def event_source(self, subject: str) -> str:
        """The publisher named by an event's subject (its last token)."""
        return subject.rsplit(".", 1)[-1]

    @property
    def all_events(self) -> str:
        return f"{self.root}.evt.>"

    # -- component invocations ---------------------------------------------

    def rpc(self, component_id: str, interface: str) -> str:
        safe = re.sub(r"[^-_a-zA-Z0-9]", "_", interface)
        return f"{self.root}.rpc.{check_token('component id', component_id)}.{safe}"

    # -- out-of-process providers ------------------------------------------------

    def provider(self, provider_id: str, operation: str) -> str:
        return f"{self.root}.prov.{check_token('provider id', provider_id)}.{operation}"

    def provider_all(self, provider_id: str) -> str:
        return f"{self.root}.prov.{check_token('provider id', provider_id)}.>"

    # -- policy ------------------------------------------------------------------

    @property
    def policy(self) -> str:
        """Where hosts ask a policy service (host.policy) unless told another subject."""
        return f"{self.root}.policy"

    # -- JetStream buckets ---------------------------------------------------

    def bucket(self, purpose: str) -> str:
        return f"{self.prefix}-{self.lattice}-{purpose}"

    def owns_bucket(self, name: str) -> bool:
        """Whether ``name`` is (or could be) a lattice's own bucket, of any lattice name."""
        return name.startswith(f"{self.prefix}-")

    @property
    def links_bucket(self) -> str:
        return self.bucket("links")

    @property
    def config_bucket(self) -> str:
        return self.bucket("config")

    @property
    def specs_bucket(self) -> str:
        return self.bucket("specs")

    @property
    def lease_bucket(self) -> str:
        return self.bucket("lease")

    @property
    def secrets_bucket(self) -> str:
        """Sealed secret values (``lattice.secrets``): never readable by hosts."""
        return self.bucket("secrets")

    @property
    def artifacts_bucket(self) -> str:
        return self.bucket("artifacts")
