"""The health check of a try-boot: commit the new slot, or give it up and reboot.

A trial OS is healthy once its agent serves ``/metrics`` and the controller accepted a
heartbeat. Then it asks its BMC to ``commit`` the slot (the BMC checks the trial and its
deadline again and raises the rollback counter). If the deadline (simulated seconds since the
OS started) passes first, or the BMC refuses the commit, the agent asks the BMC to
``restart`` the unit: the try-boot flag was consumed, so that boot falls back to the
committed slot. If even that fails, the OS halts, and the next power-on falls back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from racklet.boot import BootedPayload, TrialBoot
from racklet.hw import UnitHost
from racklet.link import LinkClient, LinkError
from racklet.log import ContextLogger

LINK_TIMEOUT_SECONDS = 10.0  # wall clock: a hung BMC must not hold the OS


@dataclass
class HealthVerdict:
    """The outcome of a trial: ``committed``, or not with a reason (then the OS reboots)."""

    committed: bool
    reason: str = ""


async def link_request(host: UnitHost, op: str, **fields: Any) -> dict[str, Any]:
    """One request on a fresh link connection, bounded in time."""
    try:
        reader, writer = await host.link.connect()
    except OSError as exc:
        raise LinkError(f"cannot open the backplane link: {exc}") from exc
    link = LinkClient(reader, writer)
    try:
        async with asyncio.timeout(LINK_TIMEOUT_SECONDS):
            return await link.request(op, **fields)
    except TimeoutError as exc:
        raise LinkError(f"the BMC did not answer {op!r}") from exc
    finally:
        await link.close()


class TrialCheck:
    """Polled by the OS loop: decides once, then stays decided."""

    def __init__(
        self, host: UnitHost, booted: BootedPayload, trial: TrialBoot, started: float
    ) -> None:
        self._host = host
        self._booted = booted
        self._trial = trial
        self._deadline = started + trial.deadline_seconds
        self.verdict: HealthVerdict | None = None

    def expired(self) -> bool:
        return self._host.clock.monotonic() > self._deadline

    async def check(self, healthy: bool, logger: ContextLogger) -> HealthVerdict | None:
        """Commit if ``healthy``; give up after the deadline; otherwise wait (None)."""
        if self.verdict is not None:
            return self.verdict
        if self.expired():
            self.verdict = HealthVerdict(
                False, f"health check not passed within {self._trial.deadline_seconds:g} s"
            )
        elif healthy:
            manifest = self._booted.manifest
            try:
                await link_request(
                    self._host,
                    "commit",
                    slot=self._trial.slot,
                    version=manifest.version,
                    sha256=manifest.payload_sha256,
                )
            except LinkError as exc:
                self.verdict = HealthVerdict(False, f"commit refused: {exc}")
            else:
                self.verdict = HealthVerdict(True)
        if self.verdict is not None and not self.verdict.committed:
            logger.warning(f"trial of slot {self._trial.slot} failed: {self.verdict.reason}")
        return self.verdict
