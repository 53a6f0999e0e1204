"""Noticing when a GitSource needs a sync.

:class:`GitSourceWatcher` only decides *when*: a local repository's refs changed (a ``stat``
of the ref files every ``poll`` seconds: no subprocess, no inotify dependency, works on every
filesystem), the source's ``spec.interval`` elapsed, its spec changed, or someone asked
(``racklet.dev/sync-requested-at``). It calls ``enqueue(name)``; the controller's runtime
de-duplicates and reconciles (``racklet.controller``: the one way GitOps runs, in the product,
the tests and the benchmark).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from racklet.api import GitSource, parse_duration
from racklet.gitops._applier import Applier
from racklet.gitops._git import Location, fingerprint
from racklet.gitops._reconciler import SYNC_ANNOTATION, location_of
from racklet.gitops.errors import GitOpsError
from racklet.log import get_logger
from racklet.tasks import OwnedTask

Enqueue = Callable[[str], None]


@dataclass
class _Seen:
    location: Location
    interval: float
    trigger: tuple[int, str]  # generation and sync request: a change of either means sync now
    fingerprint: tuple[int, ...] | None
    last: float


class GitSourceWatcher:
    """Calls ``enqueue(name)`` whenever GitSource ``name`` should be synced."""

    def __init__(
        self,
        applier: Applier,
        enqueue: Enqueue,
        *,
        poll: float = 0.1,
        refresh: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._applier = applier
        self._enqueue = enqueue
        self._poll = poll
        self._refresh = refresh
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._task = OwnedTask("gitops-watcher")
        self._log = get_logger("gitops")

    async def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        next_refresh = 0.0
        while True:
            now = self._clock()
            if now >= next_refresh:
                try:
                    await self._load_sources(now)
                except GitOpsError as exc:
                    self._log.warning("cannot list GitSources: %s", exc)
                next_refresh = now + self._refresh
            await self._check(now)
            await asyncio.sleep(self._poll)

    async def _load_sources(self, now: float) -> None:
        names = set()
        for raw in await self._applier.list("GitSource"):
            try:
                source = GitSource.model_validate(raw)
            except ValidationError as exc:  # the store validated it; never let one stop all
                self._log.warning("skipping an unreadable GitSource: %s", exc.errors()[:1])
                continue
            name = source.metadata.name
            names.add(name)
            location = location_of(source)
            trigger = (
                source.metadata.generation,
                source.metadata.annotations.get(SYNC_ANNOTATION, ""),
            )
            interval = parse_duration(source.spec.interval)
            seen = self._seen.get(name)
            if seen is None or seen.trigger != trigger or seen.location != location:
                self._seen[name] = _Seen(location, interval, trigger, None, now)
                self._enqueue(name)
            else:
                seen.interval = interval
        for gone in set(self._seen) - names:
            del self._seen[gone]

    async def _check(self, now: float) -> None:
        if not self._seen:
            return
        prints = await asyncio.to_thread(
            lambda: {n: fingerprint(s.location) for n, s in self._seen.items()}
        )
        for name, seen in list(self._seen.items()):
            changed = name in prints and prints[name] != seen.fingerprint
            if name in prints:
                seen.fingerprint = prints[name]
            if changed or now - seen.last >= seen.interval:
                seen.last = now
                self._enqueue(name)
