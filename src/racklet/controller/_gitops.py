"""GitOps inside the controller: the GitSource reconciler and the watcher that wakes it.

The library (``racklet.gitops``) does the work; this module only plugs it into the runtime:
GitSource objects are reconciled like any other kind (so resync, back-off and per-object
serialisation apply, and only the leader acts), and a watcher enqueues a source the moment
its local repository gets a commit, so a commit is applied well within the 2 s goal. This is
the only way GitOps runs: the controller process, the tests and ``bench/gitops_latency.py``
all register it in a :class:`racklet.controller.Runtime`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from racklet.gitops import GitSourceReconciler, GitSourceWatcher, Outcome, StoreApplier
from racklet.store import Store

KIND = "GitSource"


class GitSources:
    """The runtime's reconciler for GitSource; its watcher is a (leader-only) service."""

    def __init__(
        self,
        store: Store,
        cache_dir: Path | None,
        enqueue: Callable[[str, str], None],
        *,
        poll: float = 0.1,
        refresh: float = 1.0,
    ) -> None:
        applier = StoreApplier(store)
        self._reconciler = GitSourceReconciler(applier, cache_dir=cache_dir)
        self.last: dict[str, Outcome] = {}
        """Each source's last sync outcome (what tests and benchmarks read)."""
        self._watcher = GitSourceWatcher(
            applier, enqueue=lambda name: enqueue(KIND, name), poll=poll, refresh=refresh
        )

    async def reconcile(self, name: str) -> float | None:
        outcome = await self._reconciler.reconcile(name)  # writes status and events itself
        if outcome is not None:
            self.last[name] = outcome
        return None  # the watcher and the runtime's resync bring it back (drift, interval)

    async def start(self) -> None:
        """Wake a source on every commit; only the acting (leader) controller runs this."""
        await self._watcher.start()

    async def stop(self) -> None:
        await self._watcher.stop()
