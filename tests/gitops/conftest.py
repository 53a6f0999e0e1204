"""A real Git repository (the git command) and a MemoryStore with a GitSource pointing at it."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from racklet.api import ComputeUnit, GitSource, ObjectMeta, to_dict, validate
from racklet.controller import Registry, Runtime
from racklet.controller._gitops import GitSources
from racklet.gitops import GitSourceReconciler, StoreApplier
from racklet.store import MemoryStore, Store

RACK = """\
apiVersion: racklet.dev/v1alpha1
kind: Rack
metadata:
  name: rack-1
spec:
  psuRatedWatts: 60
"""

UNIT = """\
apiVersion: racklet.dev/v1alpha1
kind: ComputeUnit
metadata:
  name: unit-{slot}
  labels:
    tier: edu
spec:
  slot: {slot}
  power: {power}
  bmc:
    url: https://127.0.0.1:{port}
"""


def unit(slot: int, power: str = "On", port: int | None = None) -> str:
    return UNIT.format(slot=slot, power=power, port=port or 9000 + slot)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        git(path, "init", "--quiet", "--initial-branch=main")
        git(path, "config", "user.email", "teacher@racklet.test")
        git(path, "config", "user.name", "Teacher")

    def commit(self, files: Mapping[str, str | None], message: str = "change") -> str:
        """Write (or, with None, delete) files and commit them; the new commit's id."""
        for name, text in files.items():
            target = self.path / name
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        git(self.path, "add", "--all")
        git(self.path, "commit", "--quiet", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


@dataclass
class World:
    repo: Repo
    store: MemoryStore
    applier: StoreApplier
    reconciler: GitSourceReconciler
    first: str

    async def source(self, name: str = "rack") -> GitSource:
        return await self.store.get(GitSource, name)

    async def set_spec(self, name: str = "rack", **spec: Any) -> None:
        current = await self.source(name)
        data = to_dict(current)
        data["spec"].update(spec)
        await self.store.update(validate(GitSource, data))

    async def powers(self) -> dict[str, str]:
        return {u.metadata.name: u.spec.power for u in await self.store.list(ComputeUnit)}

    async def reasons(self, name: str | None = None) -> list[str]:
        return [e.reason for e in await self.store.events(name)]


async def add_source(store: MemoryStore, name: str, **spec: Any) -> None:
    await store.create(
        GitSource(metadata=ObjectMeta(name=name), spec={"interval": "1m", **spec})  # type: ignore[arg-type]
    )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    repo = Repo(tmp_path / "rack-repo")
    first = repo.commit(
        {"rack.yaml": RACK, **{f"units/unit-{i}.yaml": unit(i) for i in (1, 2, 3)}},
        "initial rack",
    )
    store = MemoryStore()
    await add_source(store, "rack", localPath=str(repo.path), prune=True)
    applier = StoreApplier(store)
    yield World(repo, store, applier, GitSourceReconciler(applier), first)
    await store.close()


class ProductGitOps:
    """GitOps as the controller process runs it: the GitSource reconciler in a runtime (its
    informer sees spec and annotation changes), woken on commits by the GitSource watcher.
    Resync is pushed out of the way, so what a test sees came from a watch."""

    def __init__(
        self,
        store: Store,
        cache_dir: Path | None = None,
        *,
        poll: float = 0.05,
        refresh: float = 1.0,
    ) -> None:
        registry = Registry()
        self.runtime = Runtime(registry, store, resync_seconds=3600.0)
        self.sources = GitSources(
            store, cache_dir, self.runtime.enqueue, poll=poll, refresh=refresh
        )
        registry.register(GitSource, self.sources)

    async def start(self) -> None:
        await self.runtime.start()
        await self.sources.start()

    async def stop(self) -> None:
        await self.sources.stop()
        await self.runtime.stop()
