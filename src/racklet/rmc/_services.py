"""The RMC's UpdateService, TaskService, Registries and TelemetryService.

**UpdateService** aggregates the BMCs' as bmcweb does: ``FirmwareInventory`` lists every
BMC's entries under their prefix (``FirmwareInventory/unit-1_bmc``, forwarded like a
system), and a multipart push to the RMC's ``MultipartHttpPushUri`` goes to the BMC its
``Targets`` name: a unit's firmware inventory entries (``.../FirmwareInventory/unit-1_bmc-standby``)
or the unit's system (``/redfish/v1/Systems/unit-1_unit-1``: the unit's OS, the BMC's default
target). The RMC checks nothing in the image (the BMC verifies it, as for a push made to it
directly); it passes the parts on with the targets made BMC-local and answers with the BMC's
answer, whose task is then at ``/redfish/v1/TaskService/Tasks/unit-1_<id>``. One push goes to
one unit: targets of several units are refused (push to each). ``SimpleUpdate`` is offered
when the RMC knows the rack's boot server: it fetches a BMC firmware image from there only,
with its TUF metadata, and passes both on as such a push (:mod:`racklet.rmc._simple_update`).

**TaskService** lists the BMCs' tasks under their prefix; the RMC runs none of its own.
**Registries** names the DMTF registries whose messages the RMC and the BMCs use, at their
DMTF publication URIs, and serves Racklet's own (the BMCs' ``Racklet.1.0`` messages, in the
events it relays and in the EventLogs), which only Racklet publishes; every registry but Base
(error replies only) is one an event subscription may name (``EVENT_REGISTRIES``, the
EventService's ``RegistryPrefixes``). **TelemetryService** is present and disabled: the
rack's readings are OpenMetrics at ``/metrics`` (of the RMC and of each BMC), not Redfish
metric reports.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc.login import RACKLET, RACKLET_VERSION, racklet_registry
from racklet.limits import InputRejected, parse_json
from racklet.rmc import _uris
from racklet.rmc._manager import now_iso
from racklet.rmc._messages import error, json_response
from racklet.rmc._simple_update import (
    ACTION,
    Refused,
    SimpleUpdateFetcher,
    parameters_of,
    push_files,
)

ROOT = _uris.ROOT
UPDATE = f"{ROOT}/UpdateService"
INVENTORY = f"{UPDATE}/FirmwareInventory"
MULTIPART = f"{UPDATE}/update-multipart"
SIMPLE_UPDATE = f"{UPDATE}/Actions/{ACTION}"
TASKS_SERVICE = f"{ROOT}/TaskService"
TASKS = f"{TASKS_SERVICE}/Tasks"
REGISTRIES = f"{ROOT}/Registries"
TELEMETRY = f"{ROOT}/TelemetryService"
MAX_PUSH = 64 * 1024 * 1024
"""Largest push the RMC passes on (the BMC's own limit)."""
PUSH_TIMEOUT = 120.0
"""Seconds a BMC has to take a pushed image (it answers 202 once the upload is stored)."""
REGISTRY_FILES = {
    "Base": "Base.1.22.1",
    "ResourceEvent": "ResourceEvent.1.4.3",
    "SensorEvent": "SensorEvent.1.1.0",
    "Platform": "Platform.1.3.2",
    "AccountSecurity": "AccountSecurity.1.0.1",
    "Environmental": "Environmental.1.4.0",
    "Update": "Update.1.3.0",
    "TaskEvent": "TaskEvent.1.0.5",
}
"""The DMTF registries behind the MessageIds the rack's services send."""
RACKLET_PREFIX = RACKLET.split(".", 1)[0]
RACKLET_DOCUMENT = f"{REGISTRIES}/{RACKLET_PREFIX}/{RACKLET_PREFIX}.{RACKLET_VERSION}.json"
"""Racklet's registry, served by the RMC itself (no one else publishes it)."""
EVENT_REGISTRIES = [p for p in (*REGISTRY_FILES, RACKLET_PREFIX) if p != "Base"]
"""The registries of the events the RMC sends and relays: every one it publishes but Base,
whose messages are in error replies only."""

Members = Callable[[str, str], Awaitable[list[str]]]
"""(source, collection path) → the source's members, prefixed."""
Forward = Callable[[str, str, str, bytes | None, dict[str, str]], Awaitable[Response]]
Push = Callable[[str, dict[str, Any], str], Awaitable[Response]]
"""(source, multipart files, request id) → the BMC's answer to a push, as the RMC shows it."""


def _link(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def _collection(odata_type: str, path: str, name: str, members: list[str]) -> dict[str, Any]:
    return {
        "@odata.type": f"#{odata_type}.{odata_type}",
        "@odata.id": path,
        "Name": name,
        "Members": [_link(m) for m in members],
        "Members@odata.count": len(members),
    }


def push_source(targets: list[Any]) -> tuple[str, list[str]] | str:
    """(the one source a push's ``Targets`` name, the targets as that BMC knows them), or why
    not. A unit's system as a target means the unit's OS: the BMC's default (no targets)."""
    sources: set[str] = set()
    local: list[str] = []
    for target in targets:
        found = _uris.route(target) if isinstance(target, str) else None
        if found is None:
            return f"{target!r} is not a resource of a unit behind the RMC"
        source, path = found
        sources.add(source)
        if _uris.member(target, "Systems") is None:
            local.append(path)
    if len(sources) != 1:
        return "Targets must name resources of exactly one unit (push to each unit)"
    return sources.pop(), local


class ServiceResources:
    def __init__(
        self,
        sources: list[str],
        members: Members,
        push: Push,
        fetcher: SimpleUpdateFetcher | None = None,
    ) -> None:
        self._sources = sources
        self._members = members
        self._push = push
        self._fetcher = fetcher

    async def _merged(self, path: str) -> list[str]:
        found = await asyncio.gather(*(self._members(s, path) for s in self._sources))
        return [uri for uris in found for uri in uris]

    async def update_service(self, request: Request) -> Response:
        return json_response(
            {
                "@odata.type": "#UpdateService.v1_14_0.UpdateService",
                "@odata.id": UPDATE,
                "Id": "UpdateService",
                "Name": "Update Service",
                "Description": "Pushes to the unit BMC that a push's Targets name",
                "ServiceEnabled": True,
                "MultipartHttpPushUri": MULTIPART,
                "MaxImageSizeBytes": MAX_PUSH,
                "FirmwareInventory": _link(INVENTORY),
                "Status": {"State": "Enabled", "Health": "OK"},
                **self._actions(),
            }
        )

    def _actions(self) -> dict[str, Any]:
        if self._fetcher is None:
            return {}
        action = {"target": SIMPLE_UPDATE, "TransferProtocol@Redfish.AllowableValues": ["HTTPS"]}
        return {"Actions": {f"#{ACTION}": action}}

    async def simple_update(self, request: Request) -> Response:
        """Fetch ``ImageURI`` from the rack's boot server and push it to the unit its
        ``Targets`` name (see :mod:`racklet.rmc._simple_update`)."""
        if self._fetcher is None:
            return error(404, "ResourceNotFound", "Action", ACTION)
        try:
            body = parse_json(await request.body(), max_bytes=64 * 1024)
        except InputRejected:
            body = None
        if not isinstance(body, dict):
            return error(400, "MalformedJSON")
        try:
            parameters = parameters_of(body)
            found = push_source(parameters["Targets"])
            if isinstance(found, str):
                return error(400, "ActionParameterValueError", "Targets", ACTION)
            source, local = found
            fetched = await self._fetcher.fetch(parameters["ImageURI"])
        except Refused as refused:
            return error(refused.status, refused.message_id, *refused.args_)
        forwarded = {k: v for k, v in parameters.items() if k == "@Redfish.OperationApplyTime"}
        if local:
            forwarded["Targets"] = local
        request_id = request.scope.get("state", {}).get("request_id", "")
        try:
            return await self._push(source, push_files(fetched, forwarded), request_id)
        finally:
            fetched.image.close()

    async def inventory(self, request: Request) -> Response:
        members = await self._merged(INVENTORY)
        return json_response(
            _collection("SoftwareInventoryCollection", INVENTORY, "Firmware Inventory", members)
        )

    async def push(self, request: Request) -> Response:
        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=64 * 1024)
        except (HTTPException, MultiPartException, ValueError):  # a malformed multipart body
            return error(400, "PropertyMissing", "UpdateFile")
        try:
            parameters_part = form.get("UpdateParameters")
            file = form.get("UpdateFile")
            raw = (
                await parameters_part.read()
                if isinstance(parameters_part, UploadFile)
                else parameters_part
            )
            try:
                parameters = json.loads(raw) if raw else None
            except ValueError:
                parameters = None
            if not isinstance(parameters, dict) or not isinstance(file, UploadFile):
                return error(400, "PropertyMissing", "UpdateParameters")
            targets = parameters.get("Targets")
            if not isinstance(targets, list) or not targets:
                return error(400, "ActionParameterMissing", "MultipartHttpPushUri", "Targets")
            found = push_source(targets)
            if isinstance(found, str):
                return error(400, "ActionParameterValueError", "Targets", "MultipartHttpPushUri")
            source, local = found
            forwarded = {k: v for k, v in parameters.items() if k != "Targets"}
            if local:
                forwarded["Targets"] = local
            files: dict[str, Any] = {
                "UpdateParameters": (None, json.dumps(forwarded), "application/json"),
                "UpdateFile": (
                    file.filename or "image",
                    file.file,
                    file.content_type or "application/octet-stream",
                ),
            }
            oem = form.get("OemParameters")
            if oem is not None:
                oem_raw = await oem.read() if isinstance(oem, UploadFile) else oem
                files["OemParameters"] = (None, oem_raw, "application/json")
            request_id = request.scope.get("state", {}).get("request_id", "")
            return await self._push(source, files, request_id)
        finally:
            await form.close()

    async def task_service(self, request: Request) -> Response:
        return json_response(
            {
                "@odata.type": "#TaskService.v1_2_1.TaskService",
                "@odata.id": TASKS_SERVICE,
                "Id": "TaskService",
                "Name": "Task Service",
                "Description": "The tasks of the unit BMCs (the RMC runs none of its own)",
                "ServiceEnabled": True,
                "CompletedTaskOverWritePolicy": "Oldest",
                "LifeCycleEventOnTaskStateChange": False,
                "DateTime": now_iso(),
                "Tasks": _link(TASKS),
                "Status": {"State": "Enabled", "Health": "OK"},
            }
        )

    async def tasks(self, request: Request) -> Response:
        members = await self._merged(TASKS)
        return json_response(_collection("TaskCollection", TASKS, "Tasks", members))

    async def registries(self, request: Request) -> Response:
        members = [f"{REGISTRIES}/{prefix}" for prefix in (*REGISTRY_FILES, RACKLET_PREFIX)]
        return json_response(
            _collection("MessageRegistryFileCollection", REGISTRIES, "Registries", members)
        )

    async def registry(self, request: Request) -> Response:
        prefix = request.path_params["prefix"]
        if prefix == RACKLET_PREFIX:
            return json_response(
                {
                    "@odata.type": "#MessageRegistryFile.v1_1_4.MessageRegistryFile",
                    "@odata.id": f"{REGISTRIES}/{prefix}",
                    "Id": prefix,
                    "Name": f"{prefix} message registry",
                    "Registry": RACKLET,
                    "Languages": ["en"],
                    "Location": [{"Language": "en", "Uri": RACKLET_DOCUMENT}],
                }
            )
        version = REGISTRY_FILES.get(prefix)
        if version is None:
            return error(404, "ResourceNotFound", "MessageRegistryFile", prefix)
        return json_response(
            {
                "@odata.type": "#MessageRegistryFile.v1_1_4.MessageRegistryFile",
                "@odata.id": f"{REGISTRIES}/{prefix}",
                "Id": prefix,
                "Name": f"{prefix} message registry",
                "Registry": version.rsplit(".", 1)[0],
                "Languages": ["en"],
                "Location": [
                    {
                        "Language": "en",
                        "PublicationUri": f"https://redfish.dmtf.org/registries/{version}.json",
                    }
                ],
            }
        )

    async def racklet_registry(self, request: Request) -> Response:
        return json_response(racklet_registry())

    async def telemetry(self, request: Request) -> Response:
        return json_response(
            {
                "@odata.type": "#TelemetryService.v1_3_4.TelemetryService",
                "@odata.id": TELEMETRY,
                "Id": "TelemetryService",
                "Name": "Telemetry Service",
                "Description": "Not used: the rack's readings are OpenMetrics at /metrics",
                "ServiceEnabled": False,
                "Status": {"State": "Disabled", "Health": "OK"},
            }
        )

    def routes(self) -> list[Route]:
        return [
            Route(UPDATE, self.update_service, methods=["GET"]),
            Route(INVENTORY, self.inventory, methods=["GET"]),
            Route(MULTIPART, self.push, methods=["POST"]),
            Route(SIMPLE_UPDATE, self.simple_update, methods=["POST"]),
            Route(TASKS_SERVICE, self.task_service, methods=["GET"]),
            Route(TASKS, self.tasks, methods=["GET"]),
            Route(REGISTRIES, self.registries, methods=["GET"]),
            Route(REGISTRIES + "/{prefix}", self.registry, methods=["GET"]),
            Route(RACKLET_DOCUMENT, self.racklet_registry, methods=["GET"]),
            Route(TELEMETRY, self.telemetry, methods=["GET"]),
        ]
