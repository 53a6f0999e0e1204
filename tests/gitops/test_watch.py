"""The controller's GitOps path notices a commit in a watched local repository and applies it
on its own."""

from __future__ import annotations

import asyncio

from racklet.api import GitSource
from racklet.gitops import SYNC_ANNOTATION
from tests.gitops.conftest import ProductGitOps, World, unit

DEADLINE = 15.0  # generous bound for a loaded CI machine; the benchmark measures latency


async def wait_for_commit(world: World, commit: str) -> GitSource:
    async def applied() -> GitSource:
        while True:
            source = await world.source()
            if source.status.last_applied_commit == commit:
                return source
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(applied(), DEADLINE)


async def test_a_commit_is_applied_without_being_asked(world: World) -> None:
    runner = ProductGitOps(world.store)
    await runner.start()
    try:
        await wait_for_commit(world, world.first)
        newer = await asyncio.to_thread(
            world.repo.commit, {"units/unit-2.yaml": unit(2, power="Off")}, "unit-2 off"
        )
        await wait_for_commit(world, newer)
        assert (await world.powers())["unit-2"] == "Off"
    finally:
        await runner.stop()


async def test_a_sync_request_annotation_triggers_a_sync(world: World) -> None:
    runner = ProductGitOps(world.store, poll=0.05, refresh=3600.0)
    await runner.start()
    try:
        first = await wait_for_commit(world, world.first)
        source = await world.source()
        source.metadata.annotations[SYNC_ANNOTATION] = "2030-01-01T00:00:00Z"
        await world.store.update(source)

        async def synced_again() -> None:
            while True:
                if (await world.source()).status.last_sync_time != first.status.last_sync_time:
                    return
                await asyncio.sleep(0.02)

        await asyncio.wait_for(synced_again(), DEADLINE)
    finally:
        await runner.stop()


async def test_stop_is_clean_and_idempotent(world: World) -> None:
    before = asyncio.all_tasks()
    runner = ProductGitOps(world.store)
    await runner.start()
    await wait_for_commit(world, world.first)
    assert [t for t in asyncio.all_tasks() - before if not t.done()]  # the runtime, the watcher
    await runner.stop()
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert left == []  # every task it started was cancelled and awaited
    await runner.stop()  # a second stop is a no-op, not an error
    await runner.start()  # and a stopped runner starts again
    try:
        newer = await asyncio.to_thread(
            world.repo.commit, {"units/unit-2.yaml": unit(2, power="Off")}, "unit-2 off"
        )
        await wait_for_commit(world, newer)
    finally:
        await runner.stop()
