"""What every store backend does the same way: versioning, generations, event folding.

Pure functions over models, so the SQLite store and the in-memory fake cannot drift apart.
The result of a rule shares nothing with ``incoming`` (the caller's object); it may share
parts with ``current``, which every backend passes as its own copy and then replaces.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

from racklet.api import (
    STORED_KINDS,
    Event,
    Object,
    ObjectMeta,
    Selector,
    copy_model,
    kind_of,
    utcnow,
)
from racklet.store.errors import Conflict, StoreError

R = TypeVar("R", bound=Object)

EVENT_LIMIT = 2000  # oldest events beyond this are dropped


def for_create(obj: R, version: int) -> R:
    meta = obj.metadata.model_copy(
        update={
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "resource_version": str(version),
            "creation_timestamp": obj.metadata.creation_timestamp or utcnow(),
        }
    )
    return obj.model_copy(update={"metadata": meta}, deep=True)


def kind_name(kind: type[Any]) -> str:
    """The stored kind of a model class, refusing classes the store does not keep."""
    name = kind_of(kind)
    if name not in STORED_KINDS:
        raise StoreError(f"the store does not keep objects of kind {name!r}")
    return name


def check_version(current: Object, incoming: Object) -> None:
    """The incoming ``resourceVersion`` must be the current one (the API fills it in for an
    unconditional PUT, so the store itself never writes blind)."""
    expected = incoming.metadata.resource_version
    if expected != current.metadata.resource_version:
        raise Conflict(
            current.kind, current.metadata.name, expected, current.metadata.resource_version
        )


def for_update(current: R, incoming: R, version: int) -> R:
    """Take spec, labels and annotations from ``incoming``; keep identity and status."""
    check_version(current, incoming)
    spec_changed = incoming.spec != current.spec
    meta = ObjectMeta(
        name=current.metadata.name,
        uid=current.metadata.uid,
        generation=current.metadata.generation + (1 if spec_changed else 0),
        resource_version=str(version),
        labels=dict(incoming.metadata.labels),
        annotations=dict(incoming.metadata.annotations),
        creation_timestamp=current.metadata.creation_timestamp,
        owner_references=[o.model_copy() for o in incoming.metadata.owner_references],
    )
    return current.model_copy(update={"metadata": meta, "spec": copy_model(incoming.spec)})


def for_status(current: R, incoming: R, version: int) -> R:
    """Take only the status from ``incoming``."""
    check_version(current, incoming)
    meta = current.metadata.model_copy(update={"resource_version": str(version)})
    return current.model_copy(update={"metadata": meta, "status": copy_model(incoming.status)})


def matches(labels: Mapping[str, str], selector: Mapping[str, str] | Selector | None) -> bool:
    if selector is None:
        return True
    if isinstance(selector, Selector):
        return selector.matches(labels)
    return all(labels.get(k) == v for k, v in selector.items())


def for_delete(current: R, version: int) -> R:
    meta = current.metadata.model_copy(update={"resource_version": str(version)})
    return current.model_copy(update={"metadata": meta})


def event_key(event: Event) -> tuple[str, str, str, str]:
    """Repeats of the same thing happening to the same object fold into one event."""
    ref = event.involved_object
    return (ref.kind, ref.name, event.reason, event.message)


def new_event(event: Event) -> Event:
    now = utcnow()
    meta = event.metadata.model_copy(
        update={"uid": event.metadata.uid or str(uuid.uuid4()), "creation_timestamp": now}
    )
    return event.model_copy(
        update={"metadata": meta, "count": 1, "first_timestamp": now, "last_timestamp": now}
    )


def repeated_event(existing: Event, event: Event) -> Event:
    return existing.model_copy(
        update={"count": existing.count + 1, "last_timestamp": utcnow(), "type": event.type}
    )
