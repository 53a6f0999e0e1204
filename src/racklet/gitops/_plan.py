"""Compare a declared object with the live one: what differs, and what to write to fix it.

Declared means the spec (whole) and the labels and annotations the manifest names; keys that
the manifest does not name (a controller's own annotations, say) are left alone, so applying
twice is a no-op and a reconciler's bookkeeping is never mistaken for drift.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

OWNER_LABEL = "racklet.dev/gitsource"

Outcome = Literal["created", "configured", "unchanged"]


def _paths(before: Any, after: Any, prefix: str) -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in sorted(before.keys() | after.keys()):
            out += _paths(before.get(key), after.get(key), f"{prefix}.{key}")
        return out
    return [] if before == after else [prefix]


def differences(desired: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Field paths where ``live`` departs from ``desired`` (empty when they agree)."""
    found = _paths(desired.get("spec"), live.get("spec"), "spec")
    for section in ("labels", "annotations"):
        wanted = (desired.get("metadata") or {}).get(section) or {}
        have = (live.get("metadata") or {}).get(section) or {}
        found += [f"metadata.{section}.{k}" for k in sorted(wanted) if have.get(k) != wanted[k]]
    return found


def updated(desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """``live`` with the declared spec, labels and annotations; keeps its resourceVersion."""
    out = copy.deepcopy(live)
    meta = out.setdefault("metadata", {})
    for section in ("labels", "annotations"):
        merged = dict(meta.get(section) or {})
        merged.update((desired.get("metadata") or {}).get(section) or {})
        meta[section] = merged
    if "spec" in desired:
        out["spec"] = copy.deepcopy(desired["spec"])
    out.pop("status", None)
    return out


def owned(body: dict[str, Any], owner: str) -> dict[str, Any]:
    """A declared object marked as managed by GitSource ``owner`` (the label prune looks for).

    The commit is deliberately not stamped on each object: a commit that leaves an object
    alone must not rewrite it.
    """
    out = copy.deepcopy(body)
    out.setdefault("metadata", {}).setdefault("labels", {})[OWNER_LABEL] = owner
    return out


def owner_of(live: dict[str, Any]) -> str | None:
    return ((live.get("metadata") or {}).get("labels") or {}).get(OWNER_LABEL)
