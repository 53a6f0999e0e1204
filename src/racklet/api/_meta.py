"""Kubernetes-style metadata and conditions shared by every Racklet resource.

Only data and the small rules that belong to it (name syntax, when a condition's
``lastTransitionTime`` moves). Storage and versioning live in :mod:`racklet.store`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)
from pydantic.alias_generators import to_camel

API_VERSION: Final = "racklet.dev/v1alpha1"

DnsLabel = Annotated[
    str,
    StringConstraints(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
]
ConditionStatus = Literal["True", "False", "Unknown"]


def utcnow() -> dt.datetime:
    """Timestamps are UTC, whole microseconds dropped to keep JSON short and stable."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class Model(BaseModel):
    """camelCase on the wire (JSON and YAML), snake_case in Python; unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", validate_assignment=True
    )


M = TypeVar("M", bound=BaseModel)


def copy_model(model: M) -> M:
    """An independent deep copy, made through pydantic's JSON core.

    About four times faster than ``model_copy(deep=True)`` (Python's ``deepcopy`` walks every
    nested model), which matters on the reconcile and store-write paths at 10,000 units. Every
    stored object round-trips through JSON anyway, so nothing is lost on the way.
    """
    return type(model).model_validate_json(model.model_dump_json(by_alias=True))


class OwnerReference(Model):
    """The object this one belongs to (Kubernetes' ``ownerReferences``): deleting the owner
    deletes it. ``uid`` tells a new owner of the same name from the one that made it."""

    kind: str
    name: DnsLabel
    uid: str
    controller: bool = True
    """Whether the owner's reconciler manages this object (at most one owner does)."""


class ObjectMeta(Model):
    name: DnsLabel
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: dt.datetime | None = None
    owner_references: list[OwnerReference] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_no_owner(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        """Most objects have no owner: leave the empty list out of what is written."""
        out: dict[str, Any] = handler(self)
        if not self.owner_references:
            out.pop("ownerReferences" if info.by_alias else "owner_references", None)
        return out

    def controller_owner(self, kind: str) -> OwnerReference | None:
        """The owner of ``kind`` whose reconciler manages this object, if any."""
        return next((o for o in self.owner_references if o.controller and o.kind == kind), None)


class ObjectReference(Model):
    """Which object something is about: kind and name (names are unique per kind)."""

    kind: str
    name: DnsLabel


class Object(Model):
    """What every stored kind shares; each kind narrows ``kind``, ``spec`` and ``status``."""

    api_version: str = API_VERSION
    kind: str
    metadata: ObjectMeta
    spec: Any
    status: Any


class Condition(Model):
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: dt.datetime = Field(default_factory=utcnow)
    observed_generation: int | None = None


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str = "",
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Set (or add) one condition in place; return whether anything changed.

    ``lastTransitionTime`` moves only when ``status`` changes, so it tells how long a unit
    has been in its current state, not when the reconciler last looked.
    """
    existing = find_condition(conditions, type_)
    if existing is None:
        conditions.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now or utcnow(),
                observed_generation=observed_generation,
            )
        )
        return True
    changed = (
        existing.status,
        existing.reason,
        existing.message,
        existing.observed_generation,
    ) != (
        status,
        reason,
        message,
        observed_generation,
    )
    if existing.status != status:
        existing.last_transition_time = now or utcnow()
    existing.status = status
    existing.reason = reason
    existing.message = message
    existing.observed_generation = observed_generation
    return changed


def remove_condition(conditions: list[Condition], type_: str) -> bool:
    """Drop a condition that no longer applies; return whether one was there."""
    before = len(conditions)
    conditions[:] = [c for c in conditions if c.type != type_]
    return len(conditions) != before
