"""The process's services start in order and stop in reverse; a failure half-way stops what
had started; leader-only services run exactly while leading; a periodic chore backs off on
failure, survives a crashing round and is counted in the controller's metrics."""

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
