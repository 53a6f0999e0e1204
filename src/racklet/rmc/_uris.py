"""Member-ID prefixes of the aggregation, as pure functions over URIs and JSON documents.

The scheme is bmcweb's: a resource of unit BMC ``name`` that lives under one of the
aggregated top-level collections appears at ``/redfish/v1/<Collection>/<name>_<id>/...``.
Outgoing documents get the prefix added to every such URI (and to the member's ``Id``);
incoming requests have it removed before they are forwarded. URIs outside the aggregated
collections (a BMC's SessionService, its AccountService) are left alone — the RMC does not
proxy them. Two collections below a service are aggregated the same way, as bmcweb does:
``UpdateService/FirmwareInventory`` (``.../FirmwareInventory/unit-1_bmc``) and
``TaskService/Tasks`` and ``TaskService/TaskMonitors`` (a push forwarded to a BMC answers
with its task and task monitor, which the client then follows at the RMC).
"""

from __future__ import annotations

import re
from typing import Any

ROOT = "/redfish/v1"
AGGREGATED = ("Systems", "Chassis", "Managers")
NESTED = ("UpdateService/FirmwareInventory", "TaskService/Tasks", "TaskService/TaskMonitors")
"""Aggregated collections below a service: their members carry the prefix too."""
SEPARATOR = "_"
_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")


def member_id(source: str, local_id: str) -> str:
    return f"{source}{SEPARATOR}{local_id}"


def _member_index(parts: list[str]) -> int | None:
    """Where the member segment is in a split path under an aggregated collection."""
    if len(parts) < 5 or parts[:3] != ["", "redfish", "v1"]:
        return None
    if parts[3] in AGGREGATED:
        return 4
    if len(parts) >= 6 and f"{parts[3]}/{parts[4]}" in NESTED:
        return 5
    return None


def route(path: str) -> tuple[str, str] | None:
    """``(source, local path)`` for a prefixed resource path, or None if it is not one.

    ``path`` is the decoded request path. A dot segment, an empty segment or a character
    outside RFC 3986's path characters (a decoded ``?``, ``#``, ``%`` or ``\\``) makes it
    not one: forwarded, such a path could leave the aggregated collections on the BMC
    (``unit-1_x/../../AccountService``), where the RMC's own credentials would carry it.
    """
    parts = path.split("/")
    at = _member_index(parts)
    if at is None:
        return None
    rest = parts[at:]
    if rest[-1] == "" and len(rest) > 1:
        rest = rest[:-1]  # one trailing slash is harmless
    if not all(_SEGMENT.fullmatch(p) and p not in (".", "..") for p in rest):
        return None
    source, sep, local_id = parts[at].partition(SEPARATOR)
    if not (sep and source and local_id):
        return None
    return source, "/".join([*parts[:at], local_id, *parts[at + 1 :]])


def member(path: str, collection: str | None = None) -> tuple[str, str] | None:
    """Like :func:`route`, but only for a member itself (``/redfish/v1/Systems/unit-1_x``)."""
    found = route(path)
    if found is None or path.count("/") != _member_index(path.split("/")):
        return None
    if collection is not None and path.split("/")[3] != collection:
        return None
    return found


def add_prefix(uri: str, source: str) -> str:
    path, hash_, fragment = uri.partition("#")
    parts = path.split("/")
    at = _member_index(parts)
    if at is not None and parts[at]:
        parts[at] = member_id(source, parts[at])
        return "/".join(parts) + hash_ + fragment
    return uri


def strip_prefix(uri: str, source: str) -> str:
    """The BMC-local form of ``uri`` if it names a resource of ``source``; else unchanged."""
    found = route(uri.partition("#")[0])
    if found is None or found[0] != source:
        return uri
    _, hash_, fragment = uri.partition("#")
    return found[1] + hash_ + fragment


def _walk(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value) if value.startswith(ROOT + "/") else value
    if isinstance(value, list):
        return [_walk(item, change) for item in value]
    if isinstance(value, dict):
        return {key: _walk(item, change) for key, item in value.items()}
    return value


def prefix_document(document: Any, source: str) -> Any:
    """A copy of a BMC's JSON answer as the aggregate shows it."""
    result = _walk(document, lambda uri: add_prefix(uri, source))
    if isinstance(result, dict) and isinstance(result.get("Id"), str):
        own = result.get("@odata.id")
        found = member(own) if isinstance(own, str) else None
        # A member of a top-level collection is known by the prefixed Id, as its URI says.
        if found is not None and found[1].endswith("/" + result["Id"]):
            result["Id"] = member_id(source, result["Id"])
    return result


def strip_document(document: Any, source: str) -> Any:
    """A copy of a client's request body with this source's URIs made BMC-local."""
    return _walk(document, lambda uri: strip_prefix(uri, source))
