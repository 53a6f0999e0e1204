"""Release and Rollout (``racklet.dev/v1alpha1``): what software to run, and how to get there.

Schemas only; the reconcilers live in ``racklet.controller.reconcilers``. A Release names a
versioned set of TUF targets in one channel (``racklet release publish`` creates it); a
Rollout moves the units a selector picks to a Release: a canary first, then batches.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from racklet.api._meta import API_VERSION, Condition, DnsLabel, Model, Object

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ImageRef(Model):
    """One payload as the boot server publishes it: where, which bytes, how many."""

    url: Annotated[str, Field(pattern=r"^https://")]
    sha256: Sha256
    size_bytes: Annotated[int, Field(gt=0)]


class ReleaseTarget(Model):
    """One signed file of a release: its TUF target path, length and SHA-256."""

    name: str
    path: str
    length: Annotated[int, Field(gt=0)]
    sha256: Sha256


class ReleaseSpec(Model):
    version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")]
    package: str = "racklet-os"
    channel: DnsLabel = "stable"
    targets: list[ReleaseTarget] = Field(default_factory=list)
    image: ImageRef | None = None
    notes: str = ""


class ReleaseStatus(Model):
    phase: Literal["Pending", "Published", "Failed"] = "Pending"
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class Release(Object):
    """A signed OS version the rack can run (semantic version + image digest)."""

    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["Release"] = "Release"
    spec: ReleaseSpec
    status: ReleaseStatus = Field(default_factory=ReleaseStatus)


class RolloutSpec(Model):
    release: DnsLabel
    selector: dict[str, str] = Field(default_factory=dict)
    canary: Annotated[int, Field(ge=0)] = 1
    batch_size: Annotated[int, Field(ge=1)] = 1
    max_unavailable: Annotated[int, Field(ge=0)] = 1
    health_deadline_seconds: Annotated[float, Field(gt=0)] = 300.0
    rollback_on_failure: bool = True
    paused: bool = False
    roll_back: bool = False
    """Roll back now (the user's call, as a failure would): the channel names the release
    before this rollout again and the units not yet on the new one go back to it."""


UnitRolloutPhase = Literal["Pending", "Updating", "Updated", "Failed", "RollingBack", "RolledBack"]


class UnitRollout(Model):
    """Where one unit stands in a rollout; ``request`` is the power cycle asked of it."""

    name: DnsLabel
    phase: UnitRolloutPhase = "Pending"
    request: str = ""
    started: float | None = None
    message: str = ""


class ChannelPointer(Model):
    """A channel's current release before a rollout moved it (what a rollback restores)."""

    package: str
    version: str


class RolloutStatus(Model):
    phase: Literal[
        "Pending", "Progressing", "Paused", "Complete", "Failed", "RollingBack", "RolledBack"
    ] = "Pending"
    current_batch: Annotated[int, Field(ge=0)] = 0
    updated_units: list[DnsLabel] = Field(default_factory=list)
    failed_units: list[DnsLabel] = Field(default_factory=list)
    units: list[UnitRollout] = Field(default_factory=list)
    channel: str | None = None
    previous: ChannelPointer | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class Rollout(Object):
    """Move the units ``spec.selector`` picks to ``spec.release``, ``batchSize`` at a time."""

    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["Rollout"] = "Rollout"
    spec: RolloutSpec
    status: RolloutStatus = Field(default_factory=RolloutStatus)
