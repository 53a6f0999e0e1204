"""The reconcile runtime: informers, one serial worker per object, back-off, resync.

Reconcilers are registered in an explicit :class:`Registry` that is passed to the
:class:`Runtime` (no global default). On start the runtime runs one
:class:`racklet.controller._informer.Informer` per registered kind: it lists the kind, queues
every object, then follows the store's watch and queues each object whose spec (generation),
labels or annotations change, or that appears or goes — however it was written (API, GitOps,
``racklet apply`` on another controller, a script on the store). A status-only write is not
queued, so a reconciler's own status write never re-triggers it. :meth:`Runtime.enqueue`
queues one object at once for what the store does not show (a heartbeat, another object's
status, a reconciler waking a neighbour).

Resync is the safety net: every object is queued again once per period, spread over the
period in small batches (at most one wake-up per ``resync_tick``, 2 s) rather than in one
burst. The period is ``resync_seconds`` for a small fleet and stretches so that resync never
queues more than ``resync_rate`` objects per second (at 10,000 units and 50/s: every 200 s,
100 objects every 2 s), so an idle large fleet costs little CPU. Its names come from the
informers (no periodic list of the store).

An object is never reconciled by two workers at a time; a request that arrives while it runs
makes it run once more afterwards, and one that arrives while it waits for the recheck its
reconciler asked for (a returned delay) runs it at once: a neighbour's wake (a unit lost
under a VM) is not held up to a recheck period.
A failing object is retried with exponential back-off and jitter (a request does not cut
that short); a ``Conflict`` from the store is retried at once, since it only means someone else
wrote first. At most ``max_concurrent`` reconciles run at a time; objects waiting for a slot
are the queue depth, and those queued by a watch, ``enqueue`` or a retry get a freed slot
before those queued by resync alone (a write never waits behind a resync batch). Not here:
leader election (the process starts and stops the runtime as a leader-only service, see
:mod:`racklet.controller._services`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from racklet.api import Object, kind_of
from racklet.controller._informer import Informer
from racklet.controller.errors import PermanentError, TemporaryError
from racklet.log import get_logger
from racklet.store import Conflict, Fenced, Store
from racklet.tasks import OwnedTask

Kind = type[Object]
Key = tuple[str, str]
_CONFLICT_DELAY = 0.05
_RESYNC_TICK = 2.0
"""Seconds between two resync wake-ups at most: the objects due within one tick are queued
together. A lone reconcile woken between other processes' work runs cold (caches, clock
speed): measured at twice the CPU of the same reconcile in a batch of 100, and nearly six
times one run back to back (docs/benchmarks.md). Kubernetes' informers go further and
resync everything at once."""

log = get_logger("controller")


class RuntimeObserver(Protocol):
    """Where the runtime reports what it does (the controller's metrics)."""

    def reconcile_result(self, result: str) -> None: ...

    def reconcile_finished(self, kind: str, seconds: float, error: str | None) -> None: ...

    def watch_queue(self, depth: Callable[[], int]) -> None: ...


class Reconciler(Protocol):
    async def reconcile(self, name: str) -> float | None:
        """Bring object ``name`` towards its spec; return seconds until it should run again."""
        ...


class Registry:
    """Which reconciler handles which kind: filled by the process owner, read by the runtime."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Kind, Reconciler]] = {}

    def register(self, kind: Kind, reconciler: Reconciler) -> None:
        name = kind_of(kind)
        if name in self._entries:
            raise ValueError(f"a reconciler for {name} is already registered")
        self._entries[name] = (kind, reconciler)

    def entries(self) -> list[tuple[str, Kind, Reconciler]]:
        return [(name, kind, rec) for name, (kind, rec) in self._entries.items()]

    def get(self, kind: str) -> Reconciler | None:
        entry = self._entries.get(kind)
        return entry[1] if entry else None


class Runtime:
    def __init__(
        self,
        registry: Registry,
        store: Store,
        *,
        resync_seconds: float = 1.0,
        resync_rate: float = 50.0,
        resync_tick: float = _RESYNC_TICK,
        backoff_base: float = 0.2,
        backoff_max: float = 30.0,
        max_concurrent: int = 64,
        on_result: Callable[[str], None] | None = None,
        observer: RuntimeObserver | None = None,
    ) -> None:
        self._registry = registry
        self._store = store
        if resync_seconds <= 0 or resync_rate <= 0:
            raise ValueError("resync_seconds and resync_rate must be positive")
        self.resync_seconds = resync_seconds
        self.resync_rate = resync_rate
        self._resync_tick = resync_tick
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._observer = observer
        if on_result is None and observer is not None:
            on_result = observer.reconcile_result
        self._on_result = on_result or (lambda _result: None)
        self._slots = _Slots(max_concurrent)
        self._waiting = 0
        if observer is not None:
            observer.watch_queue(lambda: self.depth)
        self._workers: dict[Key, asyncio.Task[None]] = {}
        self._again: set[Key] = set()
        self._rechecks: dict[Key, asyncio.Event] = {}
        """The workers sleeping until a recheck their reconciler asked for: woken early by a
        request that is not resync's."""
        self._background: set[Key] = set()  # queued by resync alone: waits behind the rest
        self._resync: asyncio.Task[None] | None = None
        self._informers: list[tuple[Informer, OwnedTask]] = []
        self._stopping = True  # enqueue is ignored until start (a follower never starts)

    @property
    def depth(self) -> int:
        """Objects queued and waiting for a free reconcile slot."""
        return self._waiting

    @property
    def running(self) -> bool:
        return self._resync is not None and not self._resync.done()

    async def start(self) -> None:
        """Start an informer per registered kind, and the resync that follows them."""
        if self.running:
            return
        self._stopping = False
        for kind_name, kind, _ in self._registry.entries():
            informer = Informer(self._store, kind, self._notifier(kind_name))
            task = OwnedTask(f"controller:informer:{kind_name}")
            task.start(informer.run)
            self._informers.append((informer, task))
        self._resync = asyncio.create_task(self._resync_loop(), name="controller:resync")

    def _notifier(self, kind_name: str) -> Callable[[str], None]:
        return lambda name: self.enqueue(kind_name, name)

    async def stop(self) -> None:
        """Cancel the informers, the resync loop and every worker, and wait for them to end."""
        self._stopping = True
        for _, owned in self._informers:
            await owned.stop()
        self._informers.clear()
        tasks = [t for t in (self._resync, *self._workers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._resync = None
        self._workers.clear()
        self._again.clear()
        self._background.clear()

    def enqueue(self, kind: str, name: str) -> None:
        """Reconcile ``kind``/``name`` soon; coalesces with a run already in progress."""
        self._enqueue((kind, name), background=False)

    def _enqueue(self, key: Key, *, background: bool) -> None:
        if self._stopping or self._registry.get(key[0]) is None:
            return
        if key in self._workers:
            self._again.add(key)
            if not background:
                self._background.discard(key)
                recheck = self._rechecks.get(key)
                if recheck is not None:
                    recheck.set()
            return
        if background:
            self._background.add(key)
        task = asyncio.create_task(self._work(key), name=f"reconcile:{key[0]}/{key[1]}")
        self._workers[key] = task

    def resync_period(self, objects: int) -> float:
        """Seconds between two resyncs of one object, for a store holding ``objects``."""
        return max(self.resync_seconds, objects / self.resync_rate)

    async def _resync_loop(self) -> None:
        # The informers queue everything at start; resync then re-queues each object once
        # per period, first one batch a tick from now.
        await asyncio.gather(*(informer.synced.wait() for informer, _ in self._informers))
        loop = asyncio.get_running_loop()
        keys = self._everything()
        while True:  # a steady trickle: each object once per period, in small batches
            period = self.resync_period(len(keys))
            if not keys:
                await asyncio.sleep(period)
            step, due = period / max(1, len(keys)), loop.time()
            batch = max(1, round(min(self._resync_tick, period) / step))
            for start in range(0, len(keys), batch):
                chunk = keys[start : start + batch]
                due += step * len(chunk)
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                for key in chunk:
                    self._enqueue(key, background=True)
            keys = self._everything()

    def _everything(self) -> list[Key]:
        """Every object the informers know of."""
        return [
            (kind_of(informer.kind), name)
            for informer, _ in self._informers
            for name in informer.names()
        ]

    def _backoff(self, failures: int) -> float:
        delay = min(self._backoff_max, self._backoff_base * 2.0 ** (failures - 1))
        return delay * random.uniform(0.5, 1.0)  # full spread, so failing objects de-synchronise

    async def _work(self, key: Key) -> None:
        kind, name = key
        reconciler = self._registry.get(kind)
        assert reconciler is not None
        failures = 0
        try:
            while True:
                delay: float | None = None
                error: str | None = None
                self._waiting += 1
                try:
                    await self._slots.acquire(background=key in self._background)
                finally:
                    self._waiting -= 1
                self._again.discard(key)
                self._background.discard(key)
                started = time.perf_counter()
                try:
                    requeue = await reconciler.reconcile(name)
                except asyncio.CancelledError:
                    raise
                except Conflict:
                    self._on_result("conflict")
                    error, delay = "Conflict", _CONFLICT_DELAY
                except Fenced as exc:  # deposed: the new leader owns this object now
                    self._on_result("error")
                    log.warning("%s/%s: %s", kind, name, exc)
                    error, delay = "Fenced", self._backoff_max
                except TemporaryError as exc:
                    self._on_result("error")
                    log.warning("%s/%s: %s (retry in %.1f s)", kind, name, exc, exc.delay)
                    error, delay = "Temporary", exc.delay
                except PermanentError as exc:
                    self._on_result("error")
                    log.error("%s/%s: %s", kind, name, exc)
                    error, delay = "Permanent", self._backoff_max
                except Exception as exc:
                    failures += 1
                    self._on_result("error")
                    error, delay = type(exc).__name__, self._backoff(failures)
                    log.exception("%s/%s: reconcile failed (retry in %.2f s)", kind, name, delay)
                else:
                    failures = 0
                    self._on_result("success")
                    delay = requeue
                finally:
                    self._slots.release()
                    if self._observer is not None:
                        elapsed = time.perf_counter() - started
                        self._observer.reconcile_finished(kind, elapsed, error)
                if delay is not None and error is None:
                    await self._recheck(key, delay)
                    continue
                if delay is not None:
                    await asyncio.sleep(delay)
                    continue
                if key not in self._again:
                    return
        finally:
            if self._workers.get(key) is asyncio.current_task():
                del self._workers[key]

    async def _recheck(self, key: Key, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the object is asked for meanwhile."""
        if key in self._again and key not in self._background:
            return  # asked for while it ran: at once
        event = self._rechecks[key] = asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await event.wait()
        finally:
            if self._rechecks.get(key) is event:
                del self._rechecks[key]


class _Slots:
    """At most ``size`` reconciles at a time. Waiters queued by a watch, an ``enqueue`` or a
    retry get a freed slot before those queued by resync alone, so a write is not stuck behind
    a resync batch (each lane is first come, first served)."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._lanes: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    async def acquire(self, *, background: bool = False) -> None:
        if self._free > 0:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        lane = self._lanes[1 if background else 0]
        lane.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot as it was cancelled: pass it on
            raise  # else it stays in its lane, done: release skips it

    def release(self) -> None:
        for lane in self._lanes:
            while lane:
                waiter = lane.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1
