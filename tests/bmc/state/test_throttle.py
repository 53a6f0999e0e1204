"""Failed logins slow their source and lock an account for that source only.

The accounts are real (scrypt hashes); the clock is a manual one whose ``sleep`` advances it,
so the waits the throttle imposes are read exactly, without waiting on wall time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from racklet.bmc import write_accounts
from racklet.bmc._state.accounts import Accounts, read_accounts
from racklet.bmc._state.throttle import BackoffPolicy, LockoutPolicy, source_key
from racklet.bmc.errors import LoginThrottled

ATTACKER, OPERATOR = "192.0.2.66", "192.0.2.10"


class Clock:
    """Monotonic seconds that move only when the throttle sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    def __init__(self) -> None:
        self.failed: list[tuple[str, str, bool, bool, float]] = []
        self.unlocked: list[str] = []

    def login_failed(
        self, username: str, source: str, *, known: bool, first: bool, locked_for: float
    ) -> None:
        self.failed.append((username, source, known, first, locked_for))

    def account_unlocked(self, username: str) -> None:
        self.unlocked.append(username)


@pytest.fixture(scope="module")
def accounts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("accounts") / "accounts.json"
    write_accounts(path, "admin", "the-admin-password")
    return path


def make(path: Path, clock: Clock, **backoff: float) -> tuple[Accounts, Recorder]:
    recorder = Recorder()
    accounts = Accounts(
        read_accounts(path),
        backoff=BackoffPolicy(**backoff),  # type: ignore[arg-type]
        now=clock,
        sleep=clock.sleep,
        report=recorder,
    )
    return accounts, recorder


async def test_a_failing_source_waits_longer_each_time_and_others_do_not_wait(
    accounts_file: Path,
) -> None:
    clock = Clock()
    accounts, _ = make(accounts_file, clock)
    for _ in range(12):
        assert await accounts.verify("admin", "guess", ATTACKER) is None
    # Three free failures, then one attempt per 0.5 s, doubling, up to 8 s.
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert accounts.throttle.delay(ATTACKER) == 8.0
    waited = len(clock.sleeps)
    assert await accounts.verify("admin", "the-admin-password", OPERATOR) is not None
    assert len(clock.sleeps) == waited, "another source is not slowed"
    clock.now += 61  # a minute without failures: the count starts again
    assert accounts.throttle.delay(ATTACKER) == 0.0


async def test_five_failures_lock_the_account_for_that_source_only(accounts_file: Path) -> None:
    clock = Clock()
    accounts, recorder = make(accounts_file, clock)
    for _ in range(5):
        assert await accounts.verify("admin", "guess", ATTACKER) is None
    assert accounts.locked("admin")
    # The right password from the attacker's address is refused: guessing got no oracle.
    assert await accounts.verify("admin", "the-admin-password", ATTACKER) is None
    # From anywhere else it works, locked or not.
    assert await accounts.verify("admin", "the-admin-password", OPERATOR) is not None
    first, locks = recorder.failed[0], [f for f in recorder.failed if f[4]]
    assert first == ("admin", ATTACKER, True, True, 0.0)
    assert [lock[4] for lock in locks] == [30.0]
    assert not any(f[3] for f in recorder.failed[1:]), "only the first failure is an event"
    accounts.unlock("admin")
    assert not accounts.locked("admin") and recorder.unlocked == ["admin"]
    assert await accounts.verify("admin", "the-admin-password", ATTACKER) is not None


async def test_lockouts_double_up_to_the_maximum(accounts_file: Path) -> None:
    clock = Clock()
    accounts, recorder = make(accounts_file, clock)
    accounts.throttle.lockout = LockoutPolicy(threshold=2, duration=30, max_duration=100)
    for _ in range(4):
        for _ in range(2):
            await accounts.verify("admin", "guess", ATTACKER)
        clock.now += 200  # the lockout ran out
    assert [f[4] for f in recorder.failed if f[4]] == [30.0, 60.0, 100.0, 100.0]


async def test_unknown_users_are_throttled_and_cost_a_hash_like_known_ones(
    accounts_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import racklet.bmc._state.accounts as module

    hashed: list[str] = []
    real = module._derive

    def counting(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        hashed.append(password)
        return real(password, salt, n, r, p)

    monkeypatch.setattr(module, "_derive", counting)
    known_clock, ghost_clock = Clock(), Clock()
    known, known_report = make(accounts_file, known_clock)
    ghost, ghost_report = make(accounts_file, ghost_clock)
    for _ in range(8):
        await known.verify("admin", "guess", ATTACKER)
        await ghost.verify("nobody", "guess", ATTACKER)
    assert len(hashed) == 16, "one scrypt per attempt, whether the user exists or not"
    assert ghost_clock.sleeps == known_clock.sleeps
    assert ghost.locked("nobody") and known.locked("admin")
    assert [f[2] for f in ghost_report.failed] == [False] * 8  # not for the EventLog
    assert [f[2] for f in known_report.failed] == [True] * 8


async def test_a_long_queue_from_one_source_is_refused_at_once(accounts_file: Path) -> None:
    clock = Clock()
    accounts = Accounts(
        read_accounts(accounts_file),
        backoff=BackoffPolicy(max_wait=10.0),
        now=clock,
        sleep=_no_time,  # every attempt arrives at the same instant
    )
    for _ in range(6):
        await accounts.verify("admin", "guess", ATTACKER)
    results = await asyncio.gather(
        *(accounts.throttle.admit(ATTACKER) for _ in range(8)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, LoginThrottled)]
    assert len(refused) == 6, "two more turns fit in the next 10 s, the rest are refused"
    assert all(r.retry_after > 10 for r in refused)


async def _no_time(seconds: float) -> None:
    return None


async def test_tables_stay_bounded_whatever_the_attacker_makes_up(accounts_file: Path) -> None:
    clock = Clock()
    accounts, _ = make(accounts_file, clock, max_entries=16)
    throttle = accounts.throttle
    for i in range(200):
        throttle.failed(f"10.0.{i // 250}.{i % 250}", f"user-{i}")
    assert len(throttle._sources) <= 16 and len(throttle._pairs) <= 16


def test_ipv6_sources_are_throttled_by_their_64() -> None:
    assert source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff::9")
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_key(None) == "-"
