"""The agent's stress job: keep a share of the unit's cores busy for a while, then let go.

Jobs arrive in the controller's reply to a heartbeat (``racklet stress``; see
``racklet.controller._stress``), each with an id: the agent takes a job once, names the last
one it took in its heartbeats, and a new job replaces the one running. The work itself is the
host's (:meth:`racklet.hw.UnitHost.set_cpu_load`: on a real unit, busy workers on that share
of the cores; in the twin, the load that drives power and heat through the profile's curve);
the duration is on the unit's own clock, so a sped-up twin runs it sped up too. When the job
ends, or the OS stops, the load returns to what it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from racklet.hw import UnitHost
from racklet.log import ContextLogger
from racklet.tasks import OwnedTask

MAX_SECONDS = 86_400.0


class StressRunner:
    def __init__(
        self,
        host: UnitHost,
        logger: ContextLogger,
        console: Callable[[str], None] | None = None,
    ) -> None:
        self._host = host
        self._logger = logger
        self._console = console or host.console
        """Prints on the unit's console (the OS stamps its lines with its uptime)."""
        self._task = OwnedTask("agent:stress")
        self.last_job: str | None = None
        """The id of the last job taken (reported in heartbeats)."""
        self._baseline: float | None = None

    async def offer(self, job: Any) -> None:
        """A job from a heartbeat reply; one already taken or malformed is ignored."""
        if not isinstance(job, dict):
            return
        job_id, cpu, seconds = job.get("id"), job.get("cpu"), job.get("seconds")
        if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
            return
        if job_id == self.last_job:
            return
        if not isinstance(cpu, int | float) or not 0.0 <= cpu <= 1.0:
            self._logger.warning(f"stress job {job_id}: cpu {cpu!r} is not within 0..1; ignored")
            return
        if not isinstance(seconds, int | float) or not 0.0 < seconds <= MAX_SECONDS:
            self._logger.warning(f"stress job {job_id}: {seconds!r} s is out of range; ignored")
            return
        self.last_job = job_id
        await self.stop()
        self._task.start(lambda: self._run(job_id, float(cpu), float(seconds)), "agent:stress")

    async def _run(self, job_id: str, cpu: float, seconds: float) -> None:
        self._baseline = self._host.cpu_load()
        self._logger.info(f"stress job {job_id}: {cpu:.0%} of the cores for {seconds:g} s")
        self._console(f"racklet-agent: stress {cpu:.0%} of the cores for {seconds:g} s")
        self._host.set_cpu_load(cpu)
        await self._host.clock.sleep(seconds)
        self._release()
        self._console(f"racklet-agent: stress job {job_id} done")

    def _release(self) -> None:
        if self._baseline is not None:
            self._host.set_cpu_load(self._baseline)
            self._baseline = None

    async def stop(self) -> None:
        """End the job running (if any) and give the cores back."""
        await self._task.stop()
        self._release()
