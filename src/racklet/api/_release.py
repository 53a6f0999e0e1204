"""Release and Rollout (``racklet.dev/v1alpha1``): what software to run, and how to get there.

Schemas only: the reconcilers that act on them come with the update-rollout work. A Release
names one signed OS image; a Rollout moves the units a selector picks to a Release in batches.
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


class ReleaseSpec(Model):
    version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")]
    image: ImageRef
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
    batch_size: Annotated[int, Field(ge=1)] = 1
    max_unavailable: Annotated[int, Field(ge=0)] = 1
    paused: bool = False


class RolloutStatus(Model):
    phase: Literal["Pending", "Progressing", "Paused", "Complete", "Failed"] = "Pending"
    current_batch: Annotated[int, Field(ge=0)] = 0
    updated_units: list[DnsLabel] = Field(default_factory=list)
    failed_units: list[DnsLabel] = Field(default_factory=list)
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class Rollout(Object):
    """Move the units ``spec.selector`` picks to ``spec.release``, ``batchSize`` at a time."""

    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["Rollout"] = "Rollout"
    spec: RolloutSpec
    status: RolloutStatus = Field(default_factory=RolloutStatus)
