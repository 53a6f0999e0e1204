"""An informer: list one kind, then follow the store's watch, and say which objects changed.

On start it lists the kind (``list_with_revision``) and reports every object; then it watches
from that revision and reports each change that matters. When the watch says the revision is
no longer kept (``Expired``: a compacted etcd, an overflowed SQLite change log) it lists again
and reports only what differs from what it knew (new, changed, gone). Any other store error
re-lists after a short back-off. SQLite, etcd and the in-memory store are alike here.

What "matters" is what controller-runtime's ``GenerationChangedPredicate`` plus its label and
annotation predicates keep: a new object, a deletion, a new ``generation`` (the spec changed),
or changed labels or annotations (requests such as a power cycle). A status-only write — the
reconciler's own — is dropped, so a reconciler never re-triggers itself. Reacting to *other*
objects' status stays the reconcilers' business (they ``enqueue`` one another) and the
runtime's resync's. What it keeps per object is one small integer (a fingerprint), not a
copy of the object.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from racklet.api import Object, kind_of
from racklet.log import get_logger
from racklet.store import Expired, Store, StoreError

log = get_logger("controller")

Notify = Callable[[str], None]
_RETRY = (0.2, 5.0)
"""Back-off between two failed list-and-watch attempts: first and largest delay (s)."""


def fingerprint(obj: Object) -> int:
    """What a change must alter to be worth a reconcile (see the module docstring)."""
    meta = obj.metadata
    return hash(
        (
            meta.generation,
            tuple(sorted(meta.labels.items())),
            tuple(sorted(meta.annotations.items())),
        )
    )


class Informer:
    """Calls ``notify(name)`` for each object of ``kind`` that appears, changes or goes."""

    def __init__(self, store: Store, kind: type[Object], notify: Notify) -> None:
        self._store = store
        self.kind = kind
        self._notify = notify
        self._known: dict[str, int] = {}
        self.synced = asyncio.Event()
        """Set once the first list has been reported (the runtime's resync waits for it)."""
        self.relists = 0

    def names(self) -> list[str]:
        """Every object of the kind, as of the last change seen."""
        return list(self._known)

    async def run(self) -> None:
        """List and watch until cancelled (or the store closes)."""
        failures = 0
        while True:
            try:
                await self._list_and_watch()
                return  # the watch ended: the store was closed
            except Expired as exc:
                self.relists += 1
                log.info("%s watch: %s; listing again", kind_of(self.kind), exc)
                failures = 0
            except StoreError as exc:
                failures += 1
                delay = min(_RETRY[1], _RETRY[0] * 2 ** (failures - 1)) * random.uniform(0.5, 1)
                log.warning("%s watch: %s (again in %.1f s)", kind_of(self.kind), exc, delay)
                await asyncio.sleep(delay)

    async def _list(self) -> tuple[dict[str, int], int]:
        """Names and fingerprints (the objects themselves are not kept: 10,000 parsed units
        held by the watch loop's frame cost 5 KiB each)."""
        objects, revision = await self._store.list_with_revision(self.kind)
        return {obj.metadata.name: fingerprint(obj) for obj in objects}, revision

    async def _list_and_watch(self) -> None:
        listed, revision = await self._list()
        changed = [n for n, print_ in listed.items() if self._known.get(n) != print_]
        gone = [n for n in self._known if n not in listed]
        self._known = listed
        for name in (*changed, *gone):
            self._notify(name)
        self.synced.set()
        async for change in self._store.watch(self.kind, revision):
            obj = change.object
            if obj is None:  # a bookmark
                continue
            name = obj.metadata.name
            if change.type == "DELETED":
                self._known.pop(name, None)
                self._notify(name)
                continue
            print_ = fingerprint(obj)
            if self._known.get(name) != print_:
                self._known[name] = print_
                self._notify(name)
