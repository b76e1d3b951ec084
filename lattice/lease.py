"""A leader lease in JetStream KV, so several controllers run and one acts.

The lease is one key holding ``{holder, expires_at}``. Taking it and renewing it are
compare-and-swap writes on the key's revision, so two contenders can never both
win the same round. A holder acts only while its own view of the lease is valid
(with a safety margin); a dead holder's lease expires and another takes over.
"""

from __future__ import annotations

import time

from nats.aio.client import Client

from lattice.kv import Bucket, open_bucket
from lattice.messages import Message, decode, encode
from lattice.subjects import Subjects

LEASE_KEY = "controller"


class LeaseRecord(Message):
    holder: str
    expires_at: float


class Lease:
    def __init__(self, nc: Client, subjects: Subjects, holder: str, ttl_s: float = 3.0) -> None:
        self.nc = nc
        self.subjects = subjects
        self.holder = holder
        self.ttl_s = ttl_s
        self._bucket: Bucket | None = None
        self._valid_until = 0.0

    async def _lease_bucket(self) -> Bucket:
        if self._bucket is None:
            self._bucket = await open_bucket(self.nc, self.subjects.lease_bucket)
        return self._bucket

    def held(self, now: float | None = None) -> bool:
        """True while our last successful write is fresh (a margin under the TTL)."""
        return (now if now is not None else time.time()) < self._valid_until

    async def try_acquire(self) -> bool:
        """Take or renew the lease; False if another live holder has it."""
        bucket = await self._lease_bucket()
        now = time.time()
        raw, revision = await bucket.get_revision(LEASE_KEY)
        if raw:
            current = decode(LeaseRecord, raw)
            if current.holder != self.holder and current.expires_at > now:
                self._valid_until = 0.0
                return False
        record = LeaseRecord(holder=self.holder, expires_at=now + self.ttl_s)
        if await bucket.put_if(LEASE_KEY, encode(record), revision) is None:
            self._valid_until = 0.0
            return False
        # Act only for two thirds of the TTL: a renewal that is late must not overlap
        # with a successor that saw the lease expire.
        self._valid_until = now + self.ttl_s * 2 / 3
        return True

    async def release(self) -> None:
        if not self.held():
            return
        bucket = await self._lease_bucket()
        raw, revision = await bucket.get_revision(LEASE_KEY)
        if raw and decode(LeaseRecord, raw).holder == self.holder:
            expired = LeaseRecord(holder=self.holder, expires_at=0.0)
            await bucket.put_if(LEASE_KEY, encode(expired), revision)
        self._valid_until = 0.0

    async def holder_now(self) -> str | None:
        raw, _ = await (await self._lease_bucket()).get_revision(LEASE_KEY)
        if not raw:
            return None
        record = decode(LeaseRecord, raw)
        return record.holder if record.expires_at > time.time() else None
