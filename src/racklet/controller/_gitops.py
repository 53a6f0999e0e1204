"""GitOps inside the controller: the GitSource reconciler and the watcher that wakes it.

The library (``racklet.gitops``) does the work; this module only plugs it into the runtime:
GitSource objects are reconciled like any other kind (so resync, back-off and per-object
serialisation apply, and only the leader acts), and a watcher enqueues a source the moment
its local repository gets a commit, so a commit is applied well within the 2 s goal.
"""

from __future__ import annotations

from pathlib import Path

from racklet.gitops import GitSourceReconciler, GitSourceWatcher, StoreApplier
from racklet.store import Store

KIND = "GitSource"


class GitSources:
    """The runtime's reconciler for GitSource, plus the watcher's lifecycle."""

    def __init__(self, store: Store, cache_dir: Path) -> None:
        applier = StoreApplier(store)
        self._reconciler = GitSourceReconciler(applier, cache_dir=cache_dir)
        self._applier = applier
        self._watcher: GitSourceWatcher | None = None

    async def reconcile(self, name: str) -> float | None:
        await self._reconciler.reconcile(name)  # writes status and events itself
        return None  # the runtime's resync brings it back (drift, interval)

    async def start_watching(self, enqueue: object) -> None:
        """Wake a source on every commit; only the acting (leader) controller calls this."""
        if self._watcher is None:
            self._watcher = GitSourceWatcher(
                self._applier,
                enqueue=lambda name: enqueue(KIND, name),  # type: ignore[operator]
                poll=0.1,
            )
            await self._watcher.start()

    async def stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await watcher.stop()
