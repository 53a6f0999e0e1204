"""The seam between the rollout engine and what it updates: :class:`Target` and its verdicts.

A target is one kind of update of one unit (its OS, its BMC's firmware). It observes units,
starts a unit's step under a request id, judges it, and takes it back; the engine
(:mod:`._engine`) decides when, from what the target observed. Targets own all I/O to units
and BMCs and never change a Rollout's phase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from racklet.api import ChannelPointer, Release, UnitRollout
from racklet.controller.reconcilers._release import SignedFile

Seen = TypeVar("Seen")
"""What a target observed of one unit in one pass (its own type; None: nothing)."""


@dataclass(frozen=True)
class StepVerdict:
    """A target's judgement of one unit's step: done, failed, or not yet (``Waiting``)."""

    state: Literal["Done", "Failed", "Waiting"]
    message: str
    detail: str = ""
    """For ``Waiting``: what was seen, quoted if the deadline passes."""


class Target(Protocol[Seen]):
    """What one kind of update does to one unit. The engine calls, per pass: :meth:`observe`
    once for the units it looks at, then the others with what was observed."""

    noun: str
    """What is updated, in messages: ``unit`` or ``BMC``."""

    def admit(
        self, release: Release, signed: Sequence[SignedFile], names: Sequence[str]
    ) -> tuple[str, str] | None:
        """Why this release cannot be rolled out to these units (reason, message), or None."""
        ...

    async def observe(self, entries: Sequence[UnitRollout]) -> Mapping[str, Seen]:
        """One look at these units (by name; a unit missing from the answer is unseen)."""
        ...

    def runs(self, seen: Seen | None, version: str) -> bool:
        """Whether the unit already runs ``version``, confirmed (it starts ``Updated``)."""
        ...

    def available(self, seen: Seen | None) -> bool:
        """Whether the unit is up; one that is not counts against ``maxUnavailable``."""
        ...

    async def start(
        self, entry: UnitRollout, release: Release, seen: Seen | None, *, again: bool
    ) -> str | None:
        """Start the step ``entry.request`` names (the batch is on record). ``again``: a
        later pass, maybe of another controller; start only if the unit shows no trace of
        the step. Returns why the unit failed at once, or None."""
        ...

    def judge(self, entry: UnitRollout, seen: Seen | None, version: str) -> StepVerdict: ...

    async def roll_back(
        self, entry: UnitRollout, previous: ChannelPointer, seen: Seen | None, *, again: bool
    ) -> None:
        """Start taking the unit back to ``previous`` (request ``entry.request``); ``again``
        as for :meth:`start`."""
        ...

    def judge_back(
        self, entry: UnitRollout, seen: Seen | None, previous: ChannelPointer, version: str
    ) -> StepVerdict: ...

    def batch_message(self, names: str, version: str) -> str:
        """The event text of a started batch, after its label."""
        ...
