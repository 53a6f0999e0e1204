"""The reconcile runtime: de-duplication, one run per object at a time, bounded concurrency,
back-off on errors, and the OpenMetrics it exports."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from racklet.api import GitSource
from racklet.controller import ControllerMetrics, Registry, Runtime, TemporaryError
from racklet.store import MemoryStore


async def until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Poll (bounded) until ``check`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


class Gate:
    """A reconciler that blocks until released, and records what ran concurrently."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls: Counter[str] = Counter()
        self.active: set[str] = set()
        self.peak = 0
        self.overlap = False
        self.failures: dict[str, int] = {}

    async def reconcile(self, name: str) -> float | None:
        if name in self.active:
            self.overlap = True
        self.active.add(name)
        self.peak = max(self.peak, len(self.active))
        self.calls[name] += 1
        try:
            await self.release.wait()
            if self.failures.get(name, 0) > 0:
                self.failures[name] -= 1
                raise RuntimeError("BMC said no")
            if name == "flaky":
                raise TemporaryError("try again", delay=0.01)
        finally:
            self.active.discard(name)
        return None


async def run(
    gate: Gate,
    body: Callable[[Runtime], Awaitable[None]],
    metrics: ControllerMetrics | None = None,
    **options: float,
) -> ControllerMetrics:
    registry = Registry()
    registry.register(GitSource, gate)
    metrics = metrics or ControllerMetrics()
    store = MemoryStore()
    runtime = Runtime(
        registry, store, resync_seconds=3600, backoff_base=0.001, observer=metrics, **options
    )  # type: ignore[arg-type]
    await runtime.start()
    try:
        await body(runtime)
    finally:
        await runtime.stop()
        await store.close()
    return metrics


async def test_requests_coalesce_and_one_object_never_runs_twice_at_once() -> None:
    gate = Gate()

    async def body(runtime: Runtime) -> None:
        for _ in range(50):
            runtime.enqueue("GitSource", "a")
        await until(lambda: gate.calls["a"] == 1, "the first run")
        for _ in range(50):
            runtime.enqueue("GitSource", "a")  # while it runs: one more run afterwards
        gate.release.set()
        await until(lambda: gate.calls["a"] == 2 and not gate.active, "the second run")
        runtime.enqueue("Rack", "no-reconciler")  # ignored, not an error

    await run(gate, body)
    assert gate.calls["a"] == 2 and not gate.overlap


async def test_concurrency_is_bounded_and_the_queue_is_measured() -> None:
    gate = Gate()
    names = [f"s{i}" for i in range(10)]
    metrics = ControllerMetrics()
    depths: list[str] = []

    async def body(runtime: Runtime) -> None:
        for name in names:
            runtime.enqueue("GitSource", name)
        await until(lambda: gate.peak == 3 and runtime.depth == 7, "3 running, 7 queued")
        depths.append(metrics_text(metrics))
        gate.release.set()
        await until(lambda: sum(gate.calls.values()) == 10 and runtime.depth == 0, "all done")

    await run(gate, body, metrics, max_concurrent=3)
    assert gate.peak == 3
    assert samples(depths[0])[("racklet_controller_queue_depth", ())] == 7
    after = samples(metrics_text(metrics))
    assert after[("racklet_controller_queue_depth", ())] == 0
    key = ("racklet_controller_reconcile_duration_seconds_count", (("kind", "GitSource"),))
    assert after[key] == 10


async def test_errors_back_off_and_are_counted_by_reason() -> None:
    gate = Gate()
    gate.failures["broken"] = 3
    gate.release.set()

    async def body(runtime: Runtime) -> None:
        runtime.enqueue("GitSource", "broken")
        runtime.enqueue("GitSource", "flaky")
        await until(lambda: gate.calls["broken"] == 4, "three failures, then success")
        await until(lambda: gate.calls["flaky"] >= 3, "temporary errors retried")

    metrics = await run(gate, body)
    found = samples(metrics_text(metrics))
    errors = "racklet_controller_reconcile_errors_total"
    assert found[(errors, (("kind", "GitSource"), ("reason", "RuntimeError")))] == 3
    assert found[(errors, (("kind", "GitSource"), ("reason", "Temporary")))] >= 2
    assert found[("racklet_controller_reconcile_total", (("result", "success"),))] == 1


class Recheck:
    """A reconciler that asks to be looked at again in an hour, or fails (a back-off)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def reconcile(self, name: str) -> float | None:
        self.calls[name] += 1
        if name == "failing":
            raise TemporaryError("the BMC is away", delay=3600)
        return 3600.0


async def test_a_request_cuts_a_recheck_short_but_not_a_back_off() -> None:
    """A wake (a VM's unit went Off) reaches an object sleeping until its recheck at once,
    not a recheck period later; resync's trickle does not, nor does a request during a
    failing object's back-off (heartbeats would otherwise hammer a broken BMC)."""
    reconciler = Recheck()
    registry = Registry()
    registry.register(GitSource, reconciler)
    store = MemoryStore()
    runtime = Runtime(registry, store, resync_seconds=3600)
    await runtime.start()
    try:
        for name in ("vm", "failing"):
            runtime.enqueue("GitSource", name)
        await until(lambda: reconciler.calls["vm"] == reconciler.calls["failing"] == 1, "runs")
        runtime._enqueue(("GitSource", "vm"), background=True)  # resync: waits its recheck
        runtime.enqueue("GitSource", "failing")
        for _ in range(20):
            await asyncio.sleep(0)
        assert reconciler.calls["vm"] == 1 and reconciler.calls["failing"] == 1
        runtime.enqueue("GitSource", "vm")
        await until(lambda: reconciler.calls["vm"] == 2, "the woken recheck")
    finally:
        await runtime.stop()
        await store.close()


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    runtime = Runtime(Registry(), MemoryStore(), backoff_base=1.0, backoff_max=30.0)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (10, 30.0)):
        delays = {runtime._backoff(failures) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jitter: failing objects do not retry in lock-step


def metrics_text(metrics: ControllerMetrics) -> str:
    return metrics.render().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
