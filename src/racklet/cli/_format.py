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


def render_rows(rows: list[tuple[str, ...]], header: bool = True) -> str:
    """Columns padded to the widest cell, three spaces apart (``header=False`` skips row 0)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    shown = rows if header else rows[1:]
    return "\n".join(
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in shown
    )


def _cond(obj: dict[str, Any], type_: str) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return str(cond.get("status", "Unknown"))
    return "-"


def _cond_message(obj: dict[str, Any], type_: str) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return str(cond.get("message") or cond.get("reason") or "")
    return ""


def _percent(fraction: object) -> str:
    """A 0..1 share as a whole percentage; ``-`` when unknown."""
    if not isinstance(fraction, int | float):
        return "-"
    return f"{100.0 * fraction:.0f}"


def _unit_row(unit: dict[str, Any], wide: bool) -> tuple[str, ...]:
    status, spec = unit.get("status") or {}, unit.get("spec") or {}
    row: tuple[str, ...] = (
        unit["metadata"]["name"],
        str(spec.get("slot", "-")),
        status.get("phase") or "Unknown",
        _number(status.get("powerWatts"), 2),
        _number(status.get("temperatureCelsius"), 1),
        _percent(status.get("cpuLoad")),
        age(unit["metadata"].get("creationTimestamp")),
    )
    if wide:
        row += (
            spec.get("power", "-"),
            status.get("bootProgress") or "-",
            status.get("osVersion") or "-",
            (spec.get("bmc") or {}).get("url", "-"),
        )
    return row


def _rack_row(rack: dict[str, Any], wide: bool) -> tuple[str, ...]:
    status, spec = rack.get("status") or {}, rack.get("spec") or {}
    row: tuple[str, ...] = (
        rack["metadata"]["name"],
        status.get("phase") or "Unknown",
        str(status.get("unitsRunning", 0)),
        _number(status.get("powerWatts"), 2),
        _number(spec.get("psuRatedWatts"), 0),
        age(rack["metadata"].get("creationTimestamp")),
    )
    if wide:
        row += (
            str(spec.get("slots", "-")),
            _number(status.get("energyJoules"), 1),
            status.get("leader") or "-",
        )
    return row


def _gitsource_row(source: dict[str, Any], wide: bool) -> tuple[str, ...]:
    status, spec = source.get("status") or {}, source.get("spec") or {}
    commit = status.get("lastAppliedCommit") or "-"
    row: tuple[str, ...] = (
        source["metadata"]["name"],
        spec.get("url") or spec.get("localPath") or "-",
        spec.get("branch") or "-",
        _cond(source, "Ready"),
        commit[:12],
        age(source["metadata"].get("creationTimestamp")),
    )
    if wide:
        row += (
            str(spec.get("suspend", False)).lower(),
            str(spec.get("prune", False)).lower(),
            _cond_message(source, "Ready") or "-",
        )
    return row


def _fault_row(fault: dict[str, Any], wide: bool) -> tuple[str, ...]:
    status, spec = fault.get("status") or {}, fault.get("spec") or {}
    row: tuple[str, ...] = (
        fault["metadata"]["name"],
        spec.get("type") or "-",
        status.get("phase") or "Pending",
        ",".join(status.get("targets") or []) or ("rack" if status.get("phase") else "-"),
        spec.get("duration") or "-",
        age(fault["metadata"].get("creationTimestamp")),
    )
    if wide:
        row += (status.get("message") or "-",)
    return row


def _generic_row(obj: dict[str, Any], wide: bool) -> tuple[str, ...]:
    status = obj.get("status") or {}
    row: tuple[str, ...] = (
        obj["metadata"]["name"],
        str(status.get("phase") or "-"),
        _cond(obj, "Ready"),
        age(obj["metadata"].get("creationTimestamp")),
    )
    if wide:
        row += (_cond_message(obj, "Ready") or "-",)
    return row


_HEADERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ComputeUnit": (
        ("NAME", "SLOT", "PHASE", "POWER(W)", "TEMP(°C)", "LOAD(%)", "AGE"),
        ("DESIRED", "BOOT", "OS", "BMC"),
    ),
    "Rack": (
        ("NAME", "PHASE", "RUNNING", "POWER(W)", "PSU(W)", "AGE"),
        ("SLOTS", "ENERGY(J)", "LEADER"),
    ),
    "GitSource": (
        ("NAME", "SOURCE", "BRANCH", "READY", "COMMIT", "AGE"),
        ("SUSPEND", "PRUNE", "MESSAGE"),
    ),
    "Fault": (("NAME", "TYPE", "PHASE", "TARGETS", "DURATION", "AGE"), ("MESSAGE",)),
}
_ROWS = {
    "ComputeUnit": _unit_row,
    "Rack": _rack_row,
    "GitSource": _gitsource_row,
    "Fault": _fault_row,
}
_HEADERS["MicroVM"] = (
    ("NAME", "PHASE", "UNIT", "VCPUS", "MEMORY(MiB)", "EXIT", "AGE"),
    ("IMAGE", "ATTEMPT", "RESTARTS", "CPU(s)", "MESSAGE"),
)


def _microvm_row(vm: dict[str, Any], wide: bool) -> tuple[str, ...]:
    spec, status = vm.get("spec", {}), vm.get("status", {})
    exit_code = status.get("exitCode")
    row: tuple[str, ...] = (
        vm["metadata"]["name"],
        str(status.get("phase", "Pending")),
        str(status.get("unit") or "-"),
        str(spec.get("vcpus", "")),
        str(spec.get("memoryMiB", "")),
        "-" if exit_code is None else str(exit_code),
        age(vm["metadata"].get("creationTimestamp")),
    )
    if wide:
        image = spec.get("image", {})
        message = status.get("reason") or _cond_message(vm, "Scheduled")
        cpu = status.get("cpuSeconds")
        row += (
            f"{image.get('name', '')}:{image.get('version', '')}",
            str(status.get("attempt", 0)),
            str(status.get("restarts", 0)),
            "-" if cpu is None else f"{cpu:.2f}",
            message,
        )
    return row


_ROWS["MicroVM"] = _microvm_row
_HEADERS["MicroVMSet"] = (
    ("NAME", "REPLICAS", "READY", "UP-TO-DATE", "AGE"),
    ("IMAGE", "TEMPLATE", "MESSAGE"),
)


def _microvmset_row(vmset: dict[str, Any], wide: bool) -> tuple[str, ...]:
    """kubectl's Deployment columns: READY is Running of desired."""
    spec, status = vmset.get("spec", {}), vmset.get("status", {})
    row: tuple[str, ...] = (
        vmset["metadata"]["name"],
        str(spec.get("replicas", "")),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', '')}",
        str(status.get("updatedReplicas", 0)),
        age(vmset["metadata"].get("creationTimestamp")),
    )
    if wide:
        image = (spec.get("template") or {}).get("spec", {}).get("image", {})
        row += (
            f"{image.get('name', '')}:{image.get('version', '')}",
            str(status.get("templateHash") or "-"),
            _cond_message(vmset, "Progressing") or "-",
        )
    return row


_ROWS["MicroVMSet"] = _microvmset_row


_GENERIC = (("NAME", "PHASE", "READY", "AGE"), ("MESSAGE",))


def table_rows(kind: str, items: list[dict[str, Any]], wide: bool = False) -> list[tuple[str, ...]]:
    """The header row then one row per object, in the columns chosen for ``kind``."""
    narrow, extra = _HEADERS.get(kind, _GENERIC)
    row = _ROWS.get(kind, _generic_row)
    return [narrow + extra if wide else narrow] + [row(obj, wide) for obj in items]


def table(kind: str, items: list[dict[str, Any]], wide: bool = False) -> str:
    if not items:
        return "No resources found."
    return render_rows(table_rows(kind, items, wide))


def events_table(events: list[dict[str, Any]]) -> str:
    if not events:
        return "No events found."
    rows: list[tuple[str, ...]] = [("LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE")]
    for event in events:
        ref = event.get("involvedObject") or {}
        rows.append(
            (
                age(event.get("lastTimestamp")),
                str(event.get("type", "Normal")),
                str(event.get("reason", "-")),
                f"{str(ref.get('kind', '?')).lower()}/{ref.get('name', '?')}",
                str(event.get("count", 1)),
                str(event.get("message", "")),
            )
        )
    return render_rows(rows)


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def as_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip()


def _fields(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return [f"{pad}<none>"]
        lines: list[str] = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines += _fields(item, indent + 1)
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            sub = _fields(item, indent + 1)
            lines.append(f"{pad}- {sub[0].strip()}")
            lines += sub[1:]
        return lines
    return [f"{pad}{_scalar(value)}"]


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return "<none>"
    return str(value)


def _conditions_and_events(status: dict[str, Any], events: list[dict[str, Any]]) -> list[str]:
    lines = ["Conditions:"]
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
    return lines


def describe(obj: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """Any kind: identity, labels, spec and status as indented fields, conditions, events."""
    if obj.get("kind") == "ComputeUnit":
        return describe_unit(obj, events)
    meta = obj.get("metadata") or {}
    created = meta.get("creationTimestamp")
    status = dict(obj.get("status") or {})
    conditions = status.pop("conditions", None)
    lines = [
        f"Name:         {meta.get('name')}",
        f"Kind:         {obj.get('kind')}",
        f"Labels:       {_pairs(meta.get('labels'))}",
        f"Annotations:  {_pairs(meta.get('annotations'))}",
        f"Generation:   {meta.get('generation', '-')}",
        f"Created:      {created or '-'} ({age(created)} ago)",
        "Spec:",
        *_fields(obj.get("spec") or {}, 1),
        "Status:",
        *_fields(status, 1),
    ]
    lines += _conditions_and_events({"conditions": conditions}, events)
    return "\n".join(lines)


def _pairs(mapping: Any) -> str:
    if not mapping:
        return "<none>"
    return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))


def describe_unit(unit: dict[str, Any], events: list[dict[str, Any]]) -> str:
    meta, spec, status = unit["metadata"], unit["spec"], unit.get("status") or {}
    created = meta.get("creationTimestamp")
    lines = [
        f"Name:          {meta['name']}",
        f"Labels:        {_pairs(meta.get('labels'))}",
        f"Slot:          {spec.get('slot', '-')}",
        f"Desired power: {spec.get('power', '-')}",
        f"BMC:           {(spec.get('bmc') or {}).get('url', '-')}",
        f"Phase:         {status.get('phase') or 'Unknown'}",
        f"Power state:   {status.get('powerState') or '-'}",
        f"Boot progress: {status.get('bootProgress') or '-'}",
        f"Power:         {_number(status.get('powerWatts'), 2)} W",
        f"Energy:        {_number(status.get('energyJoules'), 1)} J",
        f"Temperature:   {_number(status.get('temperatureCelsius'), 1)} °C",
        f"CPU load:      {_percent(status.get('cpuLoad'))} %",
        f"OS version:    {status.get('osVersion') or '-'}",
        f"Agent:         {status.get('agentUrl') or '-'}",
        f"Heartbeat:     {status.get('lastHeartbeatTime') or '-'}",
        f"Created:       {created or '-'} ({age(created)} ago)",
    ]
    lines += _conditions_and_events(status, events)
    return "\n".join(lines)
