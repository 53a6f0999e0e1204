"""Render resources for people (tables, describe) and for programs (JSON, YAML)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import yaml


def age(timestamp: str | None, now: dt.datetime | None = None) -> str:
    """kubectl-style age: 45s, 12m, 3h, 2d."""
    if not timestamp:
        return "-"
    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    seconds = int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _number(value: Any, digits: int) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def units_table(units: list[dict[str, Any]]) -> str:
    header = ("NAME", "SLOT", "PHASE", "POWER(W)", "TEMP(°C)", "AGE")
    rows = [header]
    for unit in units:
        status = unit.get("status") or {}
        rows.append(
            (
                unit["metadata"]["name"],
                str(unit["spec"].get("slot", "-")),
                status.get("phase") or "Unknown",
                _number(status.get("powerWatts"), 2),
                _number(status.get("temperatureCelsius"), 1),
                age(unit["metadata"].get("creationTimestamp")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def as_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip()


def describe_unit(unit: dict[str, Any], events: list[dict[str, Any]]) -> str:
    meta, spec, status = unit["metadata"], unit["spec"], unit.get("status") or {}
    created = meta.get("creationTimestamp")
    lines = [
        f"Name:          {meta['name']}",
        f"Slot:          {spec.get('slot', '-')}",
        f"Desired power: {spec.get('power', '-')}",
        f"BMC:           {(spec.get('bmc') or {}).get('url', '-')}",
        f"Phase:         {status.get('phase') or 'Unknown'}",
        f"Power state:   {status.get('powerState') or '-'}",
        f"Boot progress: {status.get('bootProgress') or '-'}",
        f"Power:         {_number(status.get('powerWatts'), 2)} W",
        f"Energy:        {_number(status.get('energyJoules'), 1)} J",
        f"Temperature:   {_number(status.get('temperatureCelsius'), 1)} °C",
        f"OS version:    {status.get('osVersion') or '-'}",
        f"Agent:         {status.get('agentUrl') or '-'}",
        f"Heartbeat:     {status.get('lastHeartbeatTime') or '-'}",
        f"Created:       {created or '-'} ({age(created)} ago)",
        "Conditions:",
    ]
    conditions = status.get("conditions") or []
    if not conditions:
        lines.append("  <none>")
    for cond in conditions:
        lines.append(
            f"  {cond.get('type')}={cond.get('status')}  reason={cond.get('reason') or '-'}"
            f"  {cond.get('message') or ''}".rstrip()
        )
    lines.append("Events:")
    if not events:
        lines.append("  <none>")
    for event in events[-15:]:
        count = event.get("count", 1)
        times = f" (x{count})" if count and count > 1 else ""
        lines.append(
            f"  {event.get('lastTimestamp', '-')}  {event.get('type', 'Normal'):<7}  "
            f"{event.get('reason', '-')}{times}: {event.get('message', '')}"
        )
    return "\n".join(lines)
