"""Reading audit files back: what ``racklet audit`` shows."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_AGO = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> dt.datetime:
    """``30m``, ``2h``, ``1d`` ago, or an ISO time (UTC unless it names a zone)."""
    ago = _AGO.match(text.strip())
    if ago:
        seconds = float(ago.group(1)) * _SECONDS[ago.group(2)]
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"since takes a duration (30m, 2h, 1d) or a time (2026-12-07T09:00), got {text!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class AuditFormatError(ValueError):
    """A line of an audit file is not an audit record."""


@dataclass(frozen=True)
class AuditFilter:
    since: dt.datetime | None = None
    principal: str | None = None
    component: str | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        if "dropped" in record and (self.principal is not None or self.component is not None):
            return False  # a gap note names nobody
        if self.principal is not None and record.get("principal") != self.principal:
            return False
        if self.component is not None:
            component = str(record.get("component", ""))
            if component != self.component and not component.startswith(self.component + "/"):
                return False
        if self.since is not None:
            return _parse_time(record.get("time")) >= self.since
        return True


def _parse_time(text: Any) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def audit_files(state_dir: Path) -> list[Path]:
    """Every audit file of a rack's state dir, rotated ones included."""
    patterns = ("controller*/audit.log*", "bmc/*/audit.log*", "rmc/audit.log*")
    found = {p for pattern in patterns for p in state_dir.glob(pattern) if p.is_file()}
    return sorted(found)


def _lines(path: Path, strict: bool) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                if not raw.endswith(b"\n"):
                    return  # a line being written right now
                if not strict:
                    continue
                raise AuditFormatError(f"{path}:{number}: not a JSON line") from None
            if not isinstance(record, dict) or "time" not in record:
                if not strict:
                    continue
                raise AuditFormatError(f"{path}:{number}: not an audit record")
            yield record


def read_records(
    paths: Iterable[Path], where: AuditFilter | None = None, *, strict: bool = True
) -> list[dict[str, Any]]:
    """The records of ``paths`` that match ``where``, oldest first (merged by time). A line
    that is not a record is an :class:`AuditFormatError`, or skipped if not ``strict``."""
    where = where or AuditFilter()
    records = [r for path in paths for r in _lines(path, strict) if where.matches(r)]
    return sorted(records, key=lambda r: _parse_time(r.get("time")))
