"""GitSource (``racklet.dev/v1alpha1``): a Git repository whose manifests declare the rack.

Schema only; :mod:`racklet.gitops` reconciles it. Exactly one of ``url`` and ``localPath``
says where the repository is; ``interval`` is a duration such as ``30s``, ``1m`` or ``1m30s``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from racklet.api._meta import API_VERSION, Condition, Model, Object, ObjectReference

_DURATION = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
_HISTORY_LIMIT = 10


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``1h2m3s`` (Go's ``time.Duration`` spelling, whole units)."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"not a duration like 30s, 5m or 1m30s: {text!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600.0 + minutes * 60.0 + seconds


def _check_duration(text: str) -> str:
    if parse_duration(text) < 1:
        raise ValueError("must be at least 1s")
    return text


Duration = Annotated[str, Field(pattern=_DURATION.pattern, min_length=2)]


class GitSourceSpec(Model):
    url: Annotated[str, Field(pattern=r"^(https://|ssh://|git@|file://)")] | None = None
    local_path: Annotated[str, Field(min_length=1)] | None = None
    branch: Annotated[str, Field(min_length=1, pattern=r"^[^\s~^:?*\[\\]+$")] = "main"
    path: str = "."
    interval: Duration = "1m"
    prune: bool = False
    suspend: bool = False

    @model_validator(mode="after")
    def _one_location(self) -> GitSourceSpec:
        if (self.url is None) == (self.local_path is None):
            raise ValueError("exactly one of url and localPath must be set")
        _check_duration(self.interval)
        if self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError("path must stay inside the repository (relative, no '..')")
        return self


class SyncRecord(Model):
    """One attempt to apply one commit."""

    commit: str
    time: dt.datetime
    result: Literal["Applied", "Failed"]
    message: str = ""


class GitSourceStatus(Model):
    last_applied_commit: str | None = None
    last_attempted_commit: str | None = None
    last_sync_time: dt.datetime | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    inventory: list[ObjectReference] = Field(default_factory=list)
    history: Annotated[list[SyncRecord], Field(max_length=_HISTORY_LIMIT)] = Field(
        default_factory=list
    )


class GitSource(Object):
    """Apply the manifests under ``spec.path`` of ``spec.branch``, one commit at a time.

    Conditions: ``Ready`` (the last commit applied), ``Reconciling`` (a sync is under way),
    ``Stalled`` (it cannot go on without a change: bad manifest, missing repo or branch).
    """

    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["GitSource"] = "GitSource"
    spec: GitSourceSpec
    status: GitSourceStatus = Field(default_factory=GitSourceStatus)
