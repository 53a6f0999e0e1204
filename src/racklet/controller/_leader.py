"""Leader election on etcd: one controller of several runs the reconcilers.

Each candidate holds an etcd lease (TTL ``ttl`` seconds, refreshed every ``ttl/3``) and tries
to create the leader key attached to it, in a transaction that succeeds only if the key does
not exist (``create_revision == 0``). The winner leads until its lease expires (killed, paused,
cut off) or it resigns on a clean stop (revoking the lease, so the others take over at once);
then etcd deletes the key and the next candidate's attempt (every ``poll`` seconds) wins.

The key's revision when it was won is the *fencing token*: :meth:`fence` hands it to the
fenced store view, whose writes compare it, so a deposed leader that still believes it
leads cannot record (and therefore cannot start) an action. A leader that cannot refresh
its lease for ``ttl`` seconds steps down by itself, before etcd could have chosen another.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from racklet.log import get_logger
from racklet.store import Fence, StoreError
from racklet.store._etcd_gateway import EtcdGateway, b64, revision_of
from racklet.tasks import OwnedTask

log = get_logger("controller")

Hook = Callable[[], Awaitable[None]]


class LeaderElection:
    def __init__(
        self,
        gateway: EtcdGateway,
        key: bytes,
        identity: str,
        *,
        ttl: int = 5,
        poll: float = 1.0,
        on_elected: Hook | None = None,
        on_deposed: Hook | None = None,
    ) -> None:
        self._gateway = gateway
        self.key = key
        self.identity = identity
        self.ttl = ttl
        self.poll = poll
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._fence: Fence | None = None
        self._lease = 0
        self._task = OwnedTask("controller:election")
        self.terms = 0  # how many times this candidate has won

    @property
    def is_leader(self) -> bool:
        return self._fence is not None

    def fence(self) -> Fence | None:
        """The fencing token while this candidate leads, else None."""
        return self._fence

    async def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        """Stop campaigning; a leader resigns (revokes its lease) so another takes over now."""
        await self._task.stop()
        await self._step_down("stopping")
        if self._lease:
            with contextlib.suppress(StoreError):
                await self._gateway.revoke(self._lease)
            self._lease = 0

    async def leader(self) -> str | None:
        """Who leads now, as etcd says (the winner's identity), or None."""
        kv, _ = await self._gateway.get(self.key)
        return kv.value.decode() if kv is not None else None

    # -- the campaign -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._campaign()
            except StoreError as exc:
                log.warning("leader election: %s", exc)
                await self._step_down(str(exc))
            await asyncio.sleep(self.poll)

    async def _campaign(self) -> None:
        if not self._lease or await self._gateway.keepalive(self._lease) == 0:
            self._lease = await self._gateway.grant(self.ttl)
        won, answer = await self._gateway.txn(
            [{"target": "CREATE", "key": b64(self.key), "create_revision": "0"}],
            [
                {
                    "request_put": {
                        "key": b64(self.key),
                        "value": b64(self.identity),
                        "lease": str(self._lease),
                    }
                }
            ],
        )
        if not won:
            return
        self._fence = Fence(self.key, revision_of(answer))
        self.terms += 1
        log.info("elected leader (%s, fencing token %d)", self.identity, self._fence.revision)
        if self._on_elected is not None:
            await self._on_elected()
        await self._keep_leading()

    async def _keep_leading(self) -> None:
        """Refresh the lease every ttl/3; step down when etcd says it expired or when it
        could not be refreshed for a whole ttl (it may have expired unseen)."""
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(self.ttl / 3)
            sent = time.monotonic()
            try:
                remaining = await self._gateway.keepalive(self._lease)
            except StoreError as exc:
                if time.monotonic() - refreshed >= self.ttl * 0.8:
                    await self._step_down(f"lease not refreshed for {self.ttl} s ({exc})")
                    self._lease = 0
                    return
                continue
            if remaining <= 0:
                await self._step_down("the lease expired")
                self._lease = 0
                return
            refreshed = sent
            holder, _ = await self._gateway.get(self.key)
            if self._fence is None or holder is None or holder.mod_revision != self._fence.revision:
                await self._step_down("the leader key changed hands")
                return

    async def _step_down(self, why: str) -> None:
        if self._fence is None:
            return
        self._fence = None
        log.warning("no longer the leader: %s", why)
        if self._on_deposed is not None:
            await self._on_deposed()
