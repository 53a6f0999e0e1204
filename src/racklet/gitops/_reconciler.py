"""The GitSource reconciler: one commit in, the rack's objects out, the outcome in status.

Each sync resolves the branch, reads the commit's manifests and validates all of them before
writing anything: a commit with one bad document is not applied at all, the source turns
``Stalled`` naming file and field, and the objects keep their previous state (the last good
commit goes on being enforced). A good commit is applied object by object, then objects the
source owns but Git no longer declares are pruned (``spec.prune``). A sync of an unchanged
commit that finds an object changed by hand puts it back and reports it as drift.

Atomicity is about validity: nothing is written from an invalid commit. The store has no
multi-object transaction, so a store failure half-way leaves some objects written; the
source is then not Ready and the next sync (level-triggered) finishes the job.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from racklet.api import (
    KINDS,
    GitSource,
    GitSourceStatus,
    ObjectReference,
    SyncRecord,
    remove_condition,
    set_condition,
    to_dict,
)
from racklet.gitops._applier import Applier
from racklet.gitops._git import Location, Repository
from racklet.gitops._manifests import NOT_APPLICABLE, ManifestDocument, load_manifests
from racklet.gitops._plan import OWNER_LABEL, differences, owned, owner_of, updated
from racklet.gitops.errors import ApplyConflict, ApplyError, InvalidManifests, SourceError
from racklet.log import get_logger

HISTORY = 10
_ATTEMPTS = 5
SYNC_ANNOTATION = "racklet.dev/sync-requested-at"


@dataclass(frozen=True)
class Outcome:
    """What one sync did (also returned to callers such as ``racklet gitops sync``)."""

    commit: str | None
    created: tuple[str, ...] = ()
    configured: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    pruned: tuple[str, ...] = ()
    drifted: tuple[str, ...] = ()
    error: str | None = None

    def summary(self) -> str:
        parts = [
            f"{len(v)} {k}"
            for k, v in (
                ("created", self.created),
                ("configured", self.configured),
                ("unchanged", self.unchanged),
                ("pruned", self.pruned),
            )
            if v
        ]
        return ", ".join(parts) or "nothing declared"


def _now() -> dt.datetime:
    """Microseconds kept: ``lastSyncTime`` is how ``racklet gitops sync`` sees its request done."""
    return dt.datetime.now(dt.UTC)


def location_of(source: GitSource) -> Location:
    spec = source.spec
    return Location(local_path=spec.local_path, url=spec.url, branch=spec.branch, path=spec.path)


class GitSourceReconciler:
    """Syncs GitSources through an :class:`Applier`; call :meth:`reconcile` with a name.

    Level-triggered and idempotent: every call looks at Git and at the objects afresh (parsed
    manifests are cached per commit, so a resync of an unchanged commit costs one
    ``git rev-parse`` and a read of each object).
    """

    def __init__(
        self,
        applier: Applier,
        *,
        cache_dir: Path | None = None,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self._applier = applier
        self._cache_dir = cache_dir
        self._clock = clock
        self._parsed: dict[str, tuple[Location, str, list[ManifestDocument]]] = {}
        self._repos: dict[str, Repository] = {}

    def repository(self, source: GitSource) -> Repository:
        """The source's repository (reused while its location stays the same)."""
        location = location_of(source)
        repo = self._repos.get(source.metadata.name)
        if repo is None or repo.location != location:
            repo = Repository(location, self._cache_dir)
            self._repos[source.metadata.name] = repo
        return repo

    def forget(self, name: str) -> None:
        """Drop caches of a deleted source."""
        self._parsed.pop(name, None)
        self._repos.pop(name, None)

    async def reconcile(self, name: str) -> Outcome | None:
        """Sync GitSource ``name`` and write its status; None when it no longer exists."""
        raw = await self._applier.get("GitSource", name)
        if raw is None:
            self.forget(name)
            return None
        source = GitSource.model_validate(raw)
        if source.spec.suspend:
            await self._suspended(source)
            return Outcome(commit=source.status.last_applied_commit)
        log = get_logger("gitops", unit=name)
        outcome = await self._sync(source)
        if outcome.error:
            log.warning("sync failed: %s", outcome.error)
        elif outcome.created or outcome.configured or outcome.pruned:
            log.info("applied %s: %s", (outcome.commit or "")[:12], outcome.summary())
        return outcome

    async def _suspended(self, source: GitSource) -> None:
        status = source.status.model_copy(deep=True)
        changed = set_condition(
            status.conditions,
            "Reconciling",
            "False",
            "Suspended",
            "spec.suspend is true: Git is not being applied",
            observed_generation=source.metadata.generation,
        )
        if changed:
            await self._write_status(source, status)
            await self._event(source, "Suspended", "spec.suspend is true: syncing paused")

    async def _sync(self, source: GitSource) -> Outcome:
        name = source.metadata.name
        repo = self.repository(source)
        try:
            commit = await repo.fetch()
        except SourceError as exc:
            await self._failed(source, None, "SourceUnavailable", str(exc))
            return Outcome(commit=None, error=str(exc))
        cached = self._parsed.get(name)
        if cached is not None and cached[0] == repo.location and cached[1] == commit:
            manifests: list[ManifestDocument] | None = cached[2]
        else:
            manifests = None
        new_commit = commit != source.status.last_applied_commit
        if manifests is None:
            if new_commit:
                await self._reconciling(source, commit)
            try:
                manifests = load_manifests(await repo.read(commit))
            except (InvalidManifests, SourceError) as exc:
                problems = exc.problems if isinstance(exc, InvalidManifests) else [str(exc)]
                await self._failed(source, commit, "ValidationFailed", "; ".join(problems))
                # the previous state stays: go on enforcing the last good commit
                await self._enforce_previous(source)
                return Outcome(commit=commit, error=str(exc))
            self._parsed[name] = (repo.location, commit, manifests)
        try:
            outcome = await self._apply(source, commit, manifests, drift=not new_commit)
        except ApplyError as exc:
            await self._failed(source, commit, "ApplyFailed", str(exc))
            return Outcome(commit=commit, error=str(exc))
        await self._succeeded(source, commit, manifests, outcome)
        return outcome

    async def _enforce_previous(self, source: GitSource) -> None:
        cached = self._parsed.get(source.metadata.name)
        previous = source.status.last_applied_commit
        if cached is None or previous is None or cached[1] != previous:
            return
        try:
            await self._apply(source, previous, cached[2], drift=True)
        except ApplyError as exc:
            get_logger("gitops", unit=source.metadata.name).warning("drift repair: %s", exc)

    async def _apply(
        self, source: GitSource, commit: str, manifests: list[ManifestDocument], *, drift: bool
    ) -> Outcome:
        name = source.metadata.name
        # ownership first, for every object: a commit that would take over another source's
        # objects is refused before anything is written
        for manifest in manifests:
            live = await self._applier.get(manifest.kind, manifest.name)
            other = owner_of(live) if live is not None else None
            if other is not None and other != name:
                raise ApplyError(
                    f"{manifest.source}: {manifest.ref} is managed by GitSource {other}"
                )
        created: list[str] = []
        configured: list[str] = []
        unchanged: list[str] = []
        drifted: list[str] = []
        for manifest in manifests:
            desired = owned(manifest.body, name)
            outcome, fields = await self._apply_one(desired, manifest)
            {"created": created, "configured": configured, "unchanged": unchanged}[outcome].append(
                manifest.ref
            )
            if drift and outcome != "unchanged":
                drifted.append(manifest.ref)
                what = "was deleted" if outcome == "created" else f"changed ({', '.join(fields)})"
                message = f"{manifest.ref} {what} outside Git; reverted to commit {commit[:12]}"
                await self._event(source, "DriftReverted", message, "Warning")
                await self._applier.record_event(
                    manifest.kind, manifest.name, "DriftReverted", message, "Warning"
                )
        pruned = await self._prune(source, manifests) if source.spec.prune else []
        return Outcome(
            commit=commit,
            created=tuple(created),
            configured=tuple(configured),
            unchanged=tuple(unchanged),
            pruned=tuple(pruned),
            drifted=tuple(drifted),
        )

    async def _apply_one(
        self, desired: dict[str, Any], manifest: ManifestDocument
    ) -> tuple[str, list[str]]:
        for _ in range(_ATTEMPTS):
            live = await self._applier.get(manifest.kind, manifest.name)
            try:
                if live is None:
                    await self._applier.create(desired)
                    return "created", []
                fields = differences(desired, live)
                if not fields:
                    return "unchanged", []
                await self._applier.update(updated(desired, live))
                return "configured", fields
            except ApplyConflict:
                continue  # someone wrote in between: read again
        raise ApplyError(f"{manifest.ref} kept changing while it was applied")

    async def _prune(self, source: GitSource, manifests: list[ManifestDocument]) -> list[str]:
        name = source.metadata.name
        declared = {(m.kind, m.name) for m in manifests}
        pruned: list[str] = []
        for kind in sorted(set(KINDS) - NOT_APPLICABLE):
            for live in await self._applier.list(kind, {OWNER_LABEL: name}):
                obj_name = str(live["metadata"]["name"])
                if (kind, obj_name) in declared or owner_of(live) != name:
                    continue
                await self._applier.delete(kind, obj_name)
                pruned.append(f"{kind.lower()}/{obj_name}")
        if pruned:
            await self._event(source, "Pruned", f"removed from Git: {', '.join(pruned)}")
        return pruned

    # -- status -------------------------------------------------------------------------

    async def _reconciling(self, source: GitSource, commit: str) -> None:
        status = source.status.model_copy(deep=True)
        set_condition(
            status.conditions,
            "Reconciling",
            "True",
            "Progressing",
            f"applying commit {commit[:12]}",
            observed_generation=source.metadata.generation,
        )
        await self._write_status(source, status, refresh=True)

    async def _failed(
        self, source: GitSource, commit: str | None, reason: str, message: str
    ) -> None:
        status = source.status.model_copy(deep=True)
        generation = source.metadata.generation
        status.observed_generation = generation
        status.last_sync_time = self._clock()
        if commit is not None:
            status.last_attempted_commit = commit
        message = message[:2000]
        stalled = reason in ("ValidationFailed", "SourceUnavailable")
        set_condition(
            status.conditions, "Ready", "False", reason, message, observed_generation=generation
        )
        if stalled:
            set_condition(
                status.conditions,
                "Stalled",
                "True",
                reason,
                message,
                observed_generation=generation,
            )
            remove_condition(status.conditions, "Reconciling")
        else:
            set_condition(
                status.conditions,
                "Reconciling",
                "True",
                "Retrying",
                message,
                observed_generation=generation,
            )
        new_record = self._record(status, commit or "", "Failed", message)
        if await self._write_status(source, status) and new_record:
            await self._event(source, reason, message, "Warning")

    async def _succeeded(
        self, source: GitSource, commit: str, manifests: list[ManifestDocument], outcome: Outcome
    ) -> None:
        status = source.status.model_copy(deep=True)
        generation = source.metadata.generation
        status.observed_generation = generation
        status.last_sync_time = self._clock()
        status.last_applied_commit = commit
        status.last_attempted_commit = commit
        status.inventory = [ObjectReference(kind=m.kind, name=m.name) for m in manifests]
        message = f"applied {source.spec.branch}@{commit[:12]}: {len(manifests)} objects"
        set_condition(
            status.conditions, "Ready", "True", "Applied", message, observed_generation=generation
        )
        remove_condition(status.conditions, "Stalled")
        remove_condition(status.conditions, "Reconciling")
        new_record = self._record(status, commit, "Applied", outcome.summary())
        await self._write_status(source, status)
        if new_record:  # drift and prune have their own events; a resync is not news
            await self._event(source, "Applied", f"commit {commit[:12]}: {outcome.summary()}")

    def _record(
        self,
        status: GitSourceStatus,
        commit: str,
        result: Literal["Applied", "Failed"],
        message: str,
    ) -> bool:
        """Add a history entry unless it repeats the newest one; True if one was added."""
        if status.history and (status.history[0].commit, status.history[0].result) == (
            commit,
            result,
        ):
            return False
        entry = SyncRecord(commit=commit, time=self._clock(), result=result, message=message[:500])
        status.history = [entry, *status.history][:HISTORY]
        return True

    async def _write_status(
        self, source: GitSource, status: GitSourceStatus, *, refresh: bool = False
    ) -> bool:
        """Write ``status`` onto the newest version of the source; False if it is gone."""
        for _ in range(_ATTEMPTS):
            current = await self._applier.get("GitSource", source.metadata.name)
            if current is None:
                return False
            current["status"] = to_dict(status)
            try:
                written = await self._applier.update_status(current)
            except ApplyConflict:
                continue
            if refresh:
                source.metadata.resource_version = written["metadata"]["resourceVersion"]
            return True
        raise ApplyError(f"gitsource/{source.metadata.name} kept changing; status not written")

    async def _event(
        self, source: GitSource, reason: str, message: str, type: Any = "Normal"
    ) -> None:
        await self._applier.record_event("GitSource", source.metadata.name, reason, message, type)
