"""``get``, ``describe``, ``delete``, ``events`` and ``wait``: reading and removing resources.

Every command works for every kind the controller serves (``/api/v1/<plural>``); names are
checked against racklet.yaml only for compute units, whose names the rack's slots fix.
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from racklet import config as rack_config
from racklet.cli import _format, _selector
from racklet.cli._client import ApiClient, HttpError
from racklet.cli._kinds import Kind, resolve, split_ref
from racklet.cli.errors import ApiRequestFailed, UsageError
from racklet.errors import RackletError

_POLL = 0.5


def _load(args: argparse.Namespace) -> rack_config.RackConfig:
    return rack_config.load(args.config)


def _check_unit(config: rack_config.RackConfig, kind: Kind, name: str | None) -> None:
    if kind.name == "ComputeUnit" and name:
        config.unit(name)


def _sorted(kind: Kind, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if kind.name == "ComputeUnit":
        return sorted(items, key=lambda u: ((u.get("spec") or {}).get("slot", 0), _name(u)))
    return sorted(items, key=_name)


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _list_version(listing: dict[str, Any], items: list[dict[str, Any]]) -> str | None:
    version = (listing.get("metadata") or {}).get("resourceVersion")
    if version:
        return str(version)
    numbers = [
        int(v)
        for v in (str((i.get("metadata") or {}).get("resourceVersion", "")) for i in items)
        if v.isdigit()
    ]
    return str(max(numbers)) if numbers else None


def _print(kind: Kind, data: Any, items: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        print(_format.as_json(data))
    elif output == "yaml":
        print(_format.as_yaml(data))
    elif output == "name":
        for obj in items:
            print(f"{kind.name.lower()}/{_name(obj)}")
    elif kind.name == "Event":
        print(_format.events_table(items))
    else:
        print(_format.table(kind.name, items, wide=output == "wide"))


def cmd_get(args: argparse.Namespace) -> int:
    kind = resolve(args.kind)
    requirements = _selector.parse(args.selector) if args.selector else None
    config = _load(args)
    _check_unit(config, kind, args.name)
    with ApiClient(config) as api:
        if kind.name == "Event":
            items = api.events(args.name)
            data: Any = {"apiVersion": "racklet.dev/v1alpha1", "kind": "EventList", "items": items}
            _print(kind, data, items, args.output)
            return 0
        if args.name:
            data = api.get(kind.plural, args.name)
            items = [data]
            version = str((data.get("metadata") or {}).get("resourceVersion") or "") or None
        else:
            listing = api.list_kind(kind.plural, args.selector)
            items = [i for i in listing.get("items", []) if _selector.matches(requirements, i)]
            items = _sorted(kind, items)
            data = {**listing, "items": items}
            version = _list_version(listing, listing.get("items", []))
        _print(kind, data, items, args.output)
        if args.watch:
            shown = {_name(obj): _shown(kind, obj, args.output) for obj in items}
            _watch(api, kind, args, requirements, version, shown)
    return 0


def _line(kind: Kind, obj: dict[str, Any], output: str | None) -> str:
    """How one object prints as a table, wide or name row."""
    if output == "name":
        return f"{kind.name.lower()}/{_name(obj)}"
    rows = _format.table_rows(kind.name, [obj], wide=output == "wide")
    return _format.render_rows(rows, header=False)


def _shown(kind: Kind, obj: dict[str, Any], output: str | None) -> str:
    """What the row shows of the object itself: its line without the age, which moves with
    the clock, not with the object."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "creationTimestamp"}
    return _line(kind, {**obj, "metadata": meta}, output)


def _watch(
    api: ApiClient,
    kind: Kind,
    args: argparse.Namespace,
    requirements: _selector.Selector | None,
    version: str | None,
    shown: dict[str, str],
) -> None:
    """Print each change as it happens until interrupted (Ctrl-C exits 130).

    As ``kubectl get -w``: a row when an object is added, deleted, or changes in what its row
    shows. A unit's status is rewritten whenever its energy counter moves, which its row does
    not show; ``shown`` (the last line printed per object) keeps those out. JSON and YAML
    print every event: there the whole object is the row.
    """
    for event in api.watch(kind.plural, version, args.selector):
        if "type" not in event or "object" not in event:
            raise ApiRequestFailed("the controller does not stream watch events (upgrade it)")
        if event["type"] == "ERROR":
            raise ApiRequestFailed(
                str(event["object"].get("message", "the watch ended with an error"))
            )
        if event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
            continue
        obj = event["object"]
        if args.name and _name(obj) != args.name:
            continue
        if not _selector.matches(requirements, obj):
            continue
        if args.output in ("json", "yaml"):
            _print(kind, event, [obj], args.output)
            continue
        seen = _shown(kind, obj, args.output)
        if event["type"] == "DELETED":
            shown.pop(_name(obj), None)
        elif shown.get(_name(obj)) == seen:
            continue
        else:
            shown[_name(obj)] = seen
        print(_line(kind, obj, args.output), flush=True)


def cmd_describe(args: argparse.Namespace) -> int:
    kind = resolve(args.kind)
    config = _load(args)
    _check_unit(config, kind, args.name)
    with ApiClient(config) as api:
        obj = api.get(kind.plural, args.name)
        events = [
            e
            for e in api.events(args.name)
            if (e.get("involvedObject") or {}).get("kind") in (None, kind.name)
        ]
    print(_format.describe(obj, events))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    targets: list[tuple[Kind, str]] = []
    if args.filename:
        from racklet.cli._apply import declared

        targets = [(resolve(m.kind), m.name) for m in declared(args.filename)]
    elif args.kind and args.names:
        kind = resolve(args.kind)
        targets = [(kind, name) for name in args.names]
    else:
        raise UsageError("name the objects (KIND NAME...) or give -f FILE")
    with ApiClient(_load(args)) as api:
        missing = 0
        for kind, name in targets:
            try:
                api.delete(kind.plural, name)
            except HttpError as exc:
                if exc.status != 404 or not args.ignore_not_found:
                    raise
                missing += 1
                continue
            print(f"{kind.name.lower()}/{name} deleted")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    name = None
    kind: Kind | None = None
    if args.for_:
        kind, name = split_ref(args.for_)
    with ApiClient(_load(args)) as api:
        items = api.events(name, limit=args.limit)
    if kind is not None:
        items = [e for e in items if (e.get("involvedObject") or {}).get("kind") == kind.name]
    data = {"apiVersion": "racklet.dev/v1alpha1", "kind": "EventList", "items": items}
    _print(resolve("events"), data, items, args.output)
    return 0


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """``90``, ``90s``, ``2m``, ``500ms``, ``1h`` in seconds (argparse type)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 30s, 2m or 1h, got {text!r}")
    return float(match.group(1)) * _SCALE[match.group(2)]


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def _field(obj: Any, path: str) -> Any:
    for part in path.strip("{}").lstrip(".").split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def parse_for(text: str) -> tuple[str, str, str]:
    """``condition=Ready[=True]``, ``delete``, ``jsonpath={.status.phase}=Running``."""
    if text == "delete":
        return ("delete", "", "")
    what, _, rest = text.partition("=")
    if what == "condition" and rest:
        type_, _, value = rest.partition("=")
        return ("condition", type_, value or "True")
    if what == "jsonpath" and rest:
        path, sep, value = rest.rpartition("=")
        if sep and path.startswith("{") and path.endswith("}"):
            return ("jsonpath", path, value)
    raise UsageError(
        f"--for={text}: expected condition=TYPE[=STATUS], delete or jsonpath={{.path}}=VALUE"
    )


def cmd_wait(args: argparse.Namespace) -> int:
    kind, name = split_ref(args.target)
    mode, key, want = parse_for(args.for_)
    config = _load(args)
    _check_unit(config, kind, name)
    ref = f"{kind.name.lower()}/{name}"
    deadline = time.monotonic() + args.timeout
    last = "not seen yet"
    with ApiClient(config) as api:
        while True:
            obj = api.find(kind.plural, name)
            if mode == "delete":
                if obj is None:
                    print(f"{ref} deleted")
                    return 0
                last = "still exists"
            elif obj is None:
                last = "not found"
            elif mode == "condition":
                cond = _condition(obj, key)
                if cond is not None and cond.get("status") == want:
                    print(f"{ref} condition met")
                    return 0
                last = (
                    f"{key}={cond.get('status')}: {cond.get('message') or cond.get('reason')}"
                    if cond
                    else f"no {key} condition yet"
                )
            else:
                value = _field(obj, key)
                if str(value) == want:
                    print(f"{ref} condition met")
                    return 0
                last = f"{key} is {value!r}"
            if time.monotonic() >= deadline:
                raise RackletError(
                    f"timed out after {args.timeout:g} s waiting for {args.for_} on {ref} ({last})"
                )
            time.sleep(min(_POLL, max(deadline - time.monotonic(), 0.01)))
