"""The process's services start in order and stop in reverse; a failure half-way stops what
had started; leader-only services run exactly while leading; a periodic chore backs off on
failure, survives a crashing round and is counted in the controller's metrics; a wake cuts its
sleep short, at most once per ``wake_gap``."""

from __future__ import annotations

import asyncio

import pytest

from racklet.controller import ControllerMetrics, Periodic, Services


class Probe:
    def __init__(self, name: str, journal: list[str], *, fail: bool = False) -> None:
        self.name, self.journal, self.fail = name, journal, fail

    async def start(self) -> None:
        if self.fail:
            raise OSError(f"{self.name} cannot start")
        self.journal.append(f"+{self.name}")

    async def stop(self) -> None:
        self.journal.append(f"-{self.name}")


async def test_in_order_then_in_reverse_with_the_leader_group_where_marked() -> None:
    journal: list[str] = []
    services = Services()
    services.add("store", Probe("store", journal))
    services.add_leadership()
    services.add("runtime", Probe("runtime", journal), leader_only=True)
    services.add("api", Probe("api", journal))
    services.add("chores", Probe("chores", journal), leader_only=True)
    await services.start()
    assert journal == ["+store", "+runtime", "+chores", "+api"]
    assert services.leading
    await services.stop()
    assert journal[4:] == ["-chores", "-runtime", "-api", "-store"]
    assert not services.leading


async def test_a_failure_half_way_stops_what_had_started() -> None:
    journal: list[str] = []
    services = Services()
    services.add("store", Probe("store", journal))
    services.add("api", Probe("api", journal))
    services.add("machine", Probe("machine", journal, fail=True))
    with pytest.raises(OSError, match="machine cannot start"):
        await services.start()
    assert journal == ["+store", "+api", "-api", "-store"]


async def test_leader_only_services_follow_election_and_deposition() -> None:
    journal: list[str] = []
    services = Services()
    services.add("api", Probe("api", journal))
    services.add("runtime", Probe("runtime", journal), leader_only=True)
    await services.start()  # a follower: no leader group yet
    assert journal == ["+api"] and not services.leading
    await services.elected()
    await services.elected()  # a repeated hook is harmless
    assert journal == ["+api", "+runtime"]
    await services.deposed()
    assert journal == ["+api", "+runtime", "-runtime"]
    await services.elected()
    await services.stop()
    assert journal[-3:] == ["+runtime", "-runtime", "-api"]


async def test_a_failing_chore_backs_off_survives_a_crash_and_is_counted() -> None:
    metrics = ControllerMetrics()
    outcomes: list[bool | Exception | None] = [False, RuntimeError("boom"), False, True]
    rounds = 0
    fifth = asyncio.Event()

    async def round_() -> bool | None:
        nonlocal rounds
        rounds += 1
        if rounds == 5:
            fifth.set()
        outcome = outcomes.pop(0) if outcomes else True
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    chore = Periodic("demo", round_, interval=8.0, retry=1.0, jitter=0.0, observer=metrics)
    assert not await chore.run_round()
    assert chore.delay() == 1.0  # first failure: the retry delay
    assert not await chore.run_round()  # a crash is a failure, not the end
    assert chore.delay() == 2.0  # doubling
    assert not await chore.run_round()
    assert chore.delay() == 4.0
    assert await chore.run_round()
    assert chore.delay() == 8.0  # back to the interval after a good round

    # The loop itself: its first round runs at once; stop is clean and idempotent.
    await chore.start()
    await asyncio.wait_for(fifth.wait(), 10)
    await chore.stop()
    await chore.stop()
    text = metrics.render().decode()
    assert 'racklet_controller_loop_runs_total{loop="demo",result="failed"} 3.0' in text
    assert 'racklet_controller_loop_runs_total{loop="demo",result="ok"} 2.0' in text


def test_jitter_spreads_rounds_within_its_bounds() -> None:
    async def nothing() -> None:
        return None

    chore = Periodic("demo", nothing, interval=10.0, jitter=0.1)
    delays = {chore.delay() for _ in range(50)}
    assert all(9.0 <= d <= 11.0 for d in delays) and len(delays) > 1


class Rounds:
    """A chore's rounds as they start (loop time), with an event per round for waiting."""

    def __init__(self, outcome: bool = True) -> None:
        self.started: list[float] = []
        self.outcome = outcome
        self._changed = asyncio.Event()

    async def __call__(self) -> bool:
        self.started.append(asyncio.get_running_loop().time())
        self._changed.set()
        return self.outcome

    async def reach(self, count: int) -> None:
        """Until ``count`` rounds have started (bounded: a missing wake fails, never hangs)."""
        async with asyncio.timeout(20):
            while len(self.started) < count:
                self._changed.clear()
                await self._changed.wait()


async def test_a_wake_cuts_a_long_sleep_short() -> None:
    rounds = Rounds()
    chore = Periodic("demo", rounds, interval=3600.0, jitter=0.0, wake_gap=0.0)
    await chore.start()
    try:
        await rounds.reach(1)  # the first round, at once
        chore.wake()
        await rounds.reach(2)  # not an hour later
        chore.wake()
        chore.wake()  # wakes before a round begins share it
        await rounds.reach(3)
        await asyncio.sleep(0)
        assert len(rounds.started) == 3
    finally:
        await chore.stop()


async def test_wakes_without_pause_bring_one_round_per_wake_gap() -> None:
    """A device that gives evidence all the time (a board failing TLS at every look) must
    not make the controller run rounds back to back."""
    rounds = Rounds()
    gap = 0.3
    chore = Periodic("demo", rounds, interval=3600.0, jitter=0.0, wake_gap=gap)

    async def flood() -> None:
        while True:
            chore.wake()
            await asyncio.sleep(0.005)

    await chore.start()
    waker = asyncio.create_task(flood())
    try:
        await rounds.reach(4)
    finally:
        waker.cancel()
        await asyncio.gather(waker, return_exceptions=True)
        await chore.stop()
    spacing = [b - a for a, b in zip(rounds.started, rounds.started[1:], strict=False)]
    assert all(step >= gap - 0.01 for step in spacing), spacing


async def test_a_partial_woken_round_that_fails_brings_the_full_round_forward() -> None:
    """A chore woken for one unit runs only that unit's round; its failure says "retry
    soon" for the chore (the full round comes after ``retry``), its success changes nothing."""
    full, part = Rounds(), Rounds(outcome=True)
    chore = Periodic(
        "demo", full, interval=3600.0, retry=0.05, jitter=0.0, woken=part, wake_gap=0.0
    )
    await chore.start()
    try:
        await full.reach(1)
        chore.wake()
        await part.reach(1)
        assert chore.failures == 0 and len(full.started) == 1  # the hour still stands
        part.outcome = False
        chore.wake()
        await part.reach(2)
        await full.reach(2)  # retried after 0.05 s, not an hour
        assert len(part.started) == 2
    finally:
        await chore.stop()
