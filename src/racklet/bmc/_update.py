"""``UpdateService``: the firmware inventory and the multipart push of a signed image.

A push (``MultipartHttpPushUri``) carries an ``UpdateParameters`` JSON part and an
``UpdateFile`` part, as the Redfish specification's "Multipart HTTP push updates" asks. A
well-formed push is stored (0600, in the BMC's own storage) and answered 202 with a Task;
the task verifies the image (the configured :data:`~racklet.bmc.ImageVerifier`), then hands
it to the unit's :class:`~racklet.bmc.SlotProvider`. The stored upload is deleted when the
task ends, whatever the outcome: nothing unverified stays on the BMC.

Deliberately not here: ``SimpleUpdate`` (the BMC would have to fetch an image from a URL the
client names, i.e. open connections on a client's say-so) and updating the BMC's own
firmware (it is listed, read-only).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._context import MANAGER_ID, BmcContext
from racklet.bmc._errors import RedfishError
from racklet.bmc._firmware import BootSlot, ImageUpload, ImageVerifier, SlotProvider
from racklet.bmc._http import page, respond, route
from racklet.bmc._schema import ROOT, collection, link, resource
from racklet.bmc._tasks import Task, TaskRegistry
from racklet.bmc.errors import BmcError, ImageRejected

SERVICE = f"{ROOT}/UpdateService"
INVENTORY = f"{SERVICE}/FirmwareInventory"
MULTIPART = f"{SERVICE}/update-multipart"
BMC_FIRMWARE = MANAGER_ID
MAX_IMAGE = 64 * 1024 * 1024
"""Largest firmware image a multipart push may carry."""
MAX_PARAMETERS = 16 * 1024
"""Largest ``UpdateParameters`` or ``OemParameters`` part."""
_PARTS = ("UpdateParameters", "UpdateFile", "OemParameters")
_PARAMETERS = ("Targets", "@Redfish.OperationApplyTime")
_APPLY_TIMES = ("Immediate",)


@dataclass(frozen=True)
class UpdateSetup:
    """What a push needs besides the BMC context: the two seams and where uploads go."""

    verifier: ImageVerifier
    slots: SlotProvider
    uploads: Path


def slot_id(slot: BootSlot) -> str:
    return f"slot-{slot.name.lower()}"


def _slot_body(ctx: BmcContext, slot: BootSlot) -> dict[str, Any]:
    state = "Enabled" if slot.active else "StandbySpare"
    if not slot.present:
        state = "Absent"
    body = resource(
        "SoftwareInventory",
        f"{INVENTORY}/{slot_id(slot)}",
        Id=slot_id(slot),
        Name=f"Boot slot {slot.name} of {ctx.unit}",
        Description="active" if slot.active else "inactive",
        Updateable=slot.updateable,
        WriteProtected=not slot.updateable,
        Status={"State": state, "Health": "OK"},
        RelatedItem=[link(ctx.system_path)],
    )
    if slot.version is not None:
        body["Version"] = slot.version
    return body


def _bmc_body(ctx: BmcContext) -> dict[str, Any]:
    return resource(
        "SoftwareInventory",
        f"{INVENTORY}/{BMC_FIRMWARE}",
        Id=BMC_FIRMWARE,
        Name="BMC firmware",
        SoftwareId="racklet-bmc",
        Manufacturer="Racklet",
        Version=ctx.firmware_version,
        Updateable=False,
        WriteProtected=True,
        Status={"State": "Enabled", "Health": "OK"},
        RelatedItem=[link(ctx.manager_path)],
    )


def _json_part(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, UploadFile):
        raise RedfishError(400, "MissingOrMalformedPart", resolution=f"Send {name} as JSON.")
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise RedfishError(400, "MalformedJSON") from exc
    if not isinstance(parsed, dict):
        raise RedfishError(400, "MalformedJSON")
    return parsed


def _targets(parameters: Mapping[str, Any], updateable: list[str]) -> list[str]:
    """The inventory URIs the push writes: those named (each must be updateable), or all."""
    for name in parameters:
        if name not in _PARAMETERS:
            raise RedfishError(400, "PropertyUnknown", f"UpdateParameters/{name}")
    apply_time = parameters.get("@Redfish.OperationApplyTime", "Immediate")
    if apply_time not in _APPLY_TIMES:
        raise RedfishError(
            400,
            "PropertyValueNotInList",
            json.dumps(apply_time),
            "@Redfish.OperationApplyTime",
            resolution="Use Immediate.",
        )
    targets = parameters.get("Targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise RedfishError(400, "PropertyValueTypeError", json.dumps(targets), "Targets")
    for target in targets:
        if target.rstrip("/") not in updateable:
            raise RedfishError(
                400,
                "PropertyValueNotInList",
                target,
                "Targets",
                resolution=f"Use one of: {', '.join(updateable)}.",
            )
    chosen = [t.rstrip("/") for t in targets] or updateable
    if not chosen:
        raise RedfishError(400, "ActionParameterMissing", "MultipartHttpPushUri", "Targets")
    return sorted(set(chosen))


def _store(source: IO[bytes], target: Path) -> int:
    """Copy an upload into the BMC's storage (0600); its size."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    source.seek(0)
    with open(target, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
        return out.tell()


def routes(ctx: BmcContext, setup: UpdateSetup, registry: TaskRegistry) -> list[Route]:
    def inventory() -> dict[str, dict[str, Any]]:
        items = {BMC_FIRMWARE: _bmc_body(ctx)}
        for slot in setup.slots.slots():
            items[slot_id(slot)] = _slot_body(ctx, slot)
        return items

    def updateable() -> dict[str, BootSlot]:
        return {
            f"{INVENTORY}/{slot_id(slot)}": slot for slot in setup.slots.slots() if slot.updateable
        }

    async def service(request: Request) -> Response:
        return respond(
            resource(
                "UpdateService",
                SERVICE,
                Id="UpdateService",
                Name="Update Service",
                ServiceEnabled=True,
                MultipartHttpPushUri=MULTIPART,
                MaxImageSizeBytes=MAX_IMAGE,
                FirmwareInventory=link(INVENTORY),
                Status={"State": "Enabled", "Health": "OK"},
            )
        )

    async def firmware(request: Request) -> Response:
        members = page(request, [f"{INVENTORY}/{name}" for name in inventory()])
        return respond(
            collection("SoftwareInventoryCollection", INVENTORY, "Firmware Inventory", members)
        )

    async def one_item(request: Request) -> Response:
        item = inventory().get(request.path_params["item_id"])
        if item is None:
            raise RedfishError(
                404, "ResourceNotFound", "SoftwareInventory", request.path_params["item_id"]
            )
        return respond(item)

    def refuse_if_busy() -> None:
        if registry.busy("POST", MULTIPART):
            raise RedfishError(
                503,
                "ServiceTemporarilyUnavailable",
                "5",
                headers={"Retry-After": "5"},
                resolution="An update is in progress; wait for its task to end.",
            )

    async def push(request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise RedfishError(
                400, "UnrecognizedRequestBody", resolution="Send multipart/form-data."
            )
        refuse_if_busy()
        try:
            async with request.form(
                max_files=len(_PARTS), max_fields=len(_PARTS), max_part_size=MAX_PARAMETERS
            ) as form:
                upload = await _receive(form.multi_items())
        except HTTPException as exc:  # starlette's verdict on a malformed multipart body
            raise RedfishError(400, "MissingOrMalformedPart") from exc
        refuse_if_busy()  # checked again: no await between here and the task's start
        name = upload.filename

        async def work(task: Task) -> None:
            try:
                await update(task, upload, name)
            finally:
                await asyncio.to_thread(upload.path.unlink, True)

        task = registry.start(f"Update with {name}", "POST", MULTIPART, work)
        ctx.log.info(f"firmware push {name} ({upload.size} bytes) as task {task.id}")
        return respond(task.redfish(), 202, {"Location": task.monitor})

    async def _receive(items: list[tuple[str, str | UploadFile]]) -> ImageUpload:
        parts: dict[str, str | UploadFile] = {}
        for key, value in items:
            if key not in _PARTS or key in parts:
                raise RedfishError(
                    400, "MissingOrMalformedPart", resolution=f"Unexpected part {key}."
                )
            parts[key] = value
        if "UpdateParameters" not in parts or "UpdateFile" not in parts:
            raise RedfishError(
                400,
                "MissingOrMalformedPart",
                resolution="Send an UpdateParameters part and an UpdateFile part.",
            )
        parameters = _json_part(parts["UpdateParameters"], "UpdateParameters")
        oem = (
            _json_part(parts["OemParameters"], "OemParameters")
            if "OemParameters" in parts
            else None
        )
        targets = _targets(parameters, list(updateable()))
        file = parts["UpdateFile"]
        if not isinstance(file, UploadFile):
            raise RedfishError(
                400, "MissingOrMalformedPart", resolution="Send UpdateFile as a file part."
            )
        path = setup.uploads / f"upload-{secrets.token_hex(8)}.img"
        try:
            size = await asyncio.to_thread(_store, file.file, path)
        except OSError as exc:
            raise RedfishError(503, "ServiceTemporarilyUnavailable", "60") from exc
        if size == 0:
            await asyncio.to_thread(path.unlink, True)
            raise RedfishError(400, "MissingOrMalformedPart", resolution="UpdateFile is empty.")
        filename = os.path.basename(file.filename or "") or "image"
        return ImageUpload(path, filename, size, {**parameters, "Targets": targets}, oem)

    async def update(task: Task, upload: ImageUpload, name: str) -> None:
        targets: list[str] = list(upload.parameters["Targets"])
        task.progress(10, "Update.TargetDetermined", ", ".join(targets), name)
        try:
            image = await asyncio.to_thread(setup.verifier, upload)
        except ImageRejected as exc:
            raise RedfishError(
                400, "Update.VerificationFailed", name, ", ".join(targets), resolution=str(exc)
            ) from exc
        task.progress(50)
        slots = updateable()
        for target in targets:
            slot = slots.get(target)
            if slot is None:  # the slots changed while the task ran
                raise RedfishError(409, "Update.ApplyFailed", name, target)
            try:
                await setup.slots.install(upload, image, slot.name)
            except (BmcError, OSError) as exc:
                raise RedfishError(
                    500, "Update.ApplyFailed", name, target, resolution=str(exc)
                ) from exc
            task.progress(90, "Update.UpdateSuccessful", target, f"{image.name} {image.version}")

    return [
        route(SERVICE, GET=service),
        route(INVENTORY, GET=firmware),
        route(f"{INVENTORY}/{{item_id}}", GET=one_item),
        route(MULTIPART, POST=push),
    ]
