"""``UpdateService``: the firmware inventory and the multipart push of a signed image.

A push (``MultipartHttpPushUri``) carries an ``UpdateParameters`` JSON part and an
``UpdateFile`` part, as the Redfish specification's "Multipart HTTP push updates" asks. A
well-formed push is stored (0600, in the BMC's own storage) and answered 202 with a Task;
the task verifies the image (the configured :data:`~racklet.bmc.ImageVerifier`), then hands
it to the unit's :class:`~racklet.bmc.SlotProvider`. The stored upload is deleted when the
task ends, whatever the outcome: nothing unverified stays on the BMC.

The BMC's own firmware has two slots too (:mod:`racklet.bmc._state.bmc_slots`): ``bmc`` is the
running one, ``bmc-standby`` the other. A push must name ``bmc-standby`` in ``Targets`` to
write it (pushes without ``Targets`` write the unit's inactive slot, as before). With
``@Redfish.OperationApplyTime`` ``Immediate`` the BMC then try-boots it at once (it restarts);
with ``OnReset`` it waits for ``Manager.Reset``.

Deliberately not here: ``SimpleUpdate`` (the BMC would have to fetch an image from a URL the
client names, i.e. open connections on a client's say-so).
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

from racklet.bmc._http.odata import ROOT, collection, link, resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, parse_object, respond, route
from racklet.bmc._state.bmc_runtime import BmcFirmware
from racklet.bmc._state.context import MANAGER_ID, BmcContext
from racklet.bmc._state.firmware import (
    BootSlot,
    ImageUpload,
    ImageVerifier,
    SlotProvider,
    VerifiedImage,
)
from racklet.bmc._state.tasks import Task, TaskRegistry
from racklet.bmc.errors import BmcError, ImageRejected
from racklet.config import make_dir

SERVICE = f"{ROOT}/UpdateService"
INVENTORY = f"{SERVICE}/FirmwareInventory"
MULTIPART = f"{SERVICE}/update-multipart"
BMC_FIRMWARE = MANAGER_ID
BMC_STANDBY = f"{MANAGER_ID}-standby"
MAX_IMAGE = 64 * 1024 * 1024
"""Largest firmware image a multipart push may carry."""
MAX_PARAMETERS = 16 * 1024
"""Largest ``UpdateParameters`` or ``OemParameters`` part."""
_PARTS = ("UpdateParameters", "UpdateFile", "OemParameters")
_PARAMETERS = ("Targets", "@Redfish.OperationApplyTime")
_APPLY_TIMES = ("Immediate", "OnReset")


@dataclass(frozen=True)
class UpdateSetup:
    """What a push needs besides the BMC context: the two seams and where uploads go."""

    verifier: ImageVerifier
    slots: SlotProvider
    uploads: Path
    bmc: BmcFirmware | None = None
    """The BMC's own firmware slots; None: the BMC firmware is listed read-only."""


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


def _bmc_body(ctx: BmcContext, bmc: BmcFirmware | None) -> dict[str, Any]:
    """The running BMC firmware; with slots, which one and whether it is on trial."""
    slots = bmc.slots if bmc is not None else None
    description = "running"
    if slots is not None:
        trial = "on trial" if slots.trying else "committed"
        description = f"running, slot {slots.running}, {trial}"
    body = resource(
        "SoftwareInventory",
        f"{INVENTORY}/{BMC_FIRMWARE}",
        Id=BMC_FIRMWARE,
        Name="BMC firmware",
        Description=description,
        SoftwareId="racklet-bmc",
        Manufacturer="Racklet",
        Version=ctx.firmware_version,
        Updateable=False,
        WriteProtected=True,
        Status={"State": "Enabled", "Health": "Warning" if slots and slots.trying else "OK"},
        RelatedItem=[link(ctx.manager_path)],
    )
    if slots is not None:
        # The committed version is the floor: while the running one is on trial they differ.
        body["LowestSupportedVersion"] = slots.committed_version
    return body


def _standby_body(ctx: BmcContext, bmc: BmcFirmware) -> dict[str, Any]:
    """The BMC firmware slot not running: where a push writes, what a reset would try."""
    slots = bmc.slots
    slot = slots.standby
    version, failure = slots.version(slot), slots.failure(slot)
    state = "StandbySpare" if version is not None else "Absent"
    note = "committed fallback" if slot == slots.committed else "not committed"
    body = resource(
        "SoftwareInventory",
        f"{INVENTORY}/{BMC_STANDBY}",
        Id=BMC_STANDBY,
        Name="BMC firmware, standby slot",
        Description=f"slot {slot}, {note}" + (f"; given up: {failure}" if failure else ""),
        SoftwareId="racklet-bmc",
        Manufacturer="Racklet",
        Updateable=slot != slots.committed,
        WriteProtected=slot == slots.committed,
        Status={"State": state, "Health": "Critical" if failure else "OK"},
        RelatedItem=[link(ctx.manager_path)],
    )
    if version is not None:
        body["Version"] = version
    body["LowestSupportedVersion"] = slots.committed_version
    return body


def _json_part(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, UploadFile):
        raise RedfishErrorReply(400, "MissingOrMalformedPart", resolution=f"Send {name} as JSON.")
    if not str(value).strip():
        raise RedfishErrorReply(400, "MalformedJSON")
    return parse_object(value)


def _targets(
    parameters: Mapping[str, Any], updateable: list[str], explicit: list[str]
) -> list[str]:
    """The inventory URIs the push writes: those named (each must be updateable), or all of
    ``updateable``; ``explicit`` ones (the BMC's own slot) are written only when named."""
    for name in parameters:
        if name not in _PARAMETERS:
            raise RedfishErrorReply(400, "PropertyUnknown", f"UpdateParameters/{name}")
    apply_time = parameters.get("@Redfish.OperationApplyTime", "Immediate")
    if apply_time not in _APPLY_TIMES:
        raise RedfishErrorReply(
            400,
            "PropertyValueNotInList",
            json.dumps(apply_time),
            "@Redfish.OperationApplyTime",
            resolution="Use Immediate or OnReset.",
        )
    targets = parameters.get("Targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(targets), "Targets")
    for target in targets:
        if target.rstrip("/") not in (*updateable, *explicit):
            raise RedfishErrorReply(
                400,
                "PropertyValueNotInList",
                target,
                "Targets",
                resolution=f"Use one of: {', '.join((*updateable, *explicit))}.",
            )
    chosen = [t.rstrip("/") for t in targets] or updateable
    if not chosen:
        raise RedfishErrorReply(400, "ActionParameterMissing", "MultipartHttpPushUri", "Targets")
    return sorted(set(chosen))


def _store(source: IO[bytes], target: Path) -> int:
    """Copy an upload into the BMC's storage (0600); its size."""
    make_dir(target.parent)
    source.seek(0)
    with open(target, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
        return out.tell()


def routes(ctx: BmcContext, setup: UpdateSetup, registry: TaskRegistry) -> list[Route]:
    standby_uri = f"{INVENTORY}/{BMC_STANDBY}"

    def inventory() -> dict[str, dict[str, Any]]:
        items = {BMC_FIRMWARE: _bmc_body(ctx, setup.bmc)}
        if setup.bmc is not None:
            items[BMC_STANDBY] = _standby_body(ctx, setup.bmc)
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
            raise RedfishErrorReply(
                404, "ResourceNotFound", "SoftwareInventory", request.path_params["item_id"]
            )
        return respond(item)

    def refuse_if_busy() -> None:
        if registry.busy("POST", MULTIPART):
            raise RedfishErrorReply(
                503,
                "ServiceTemporarilyUnavailable",
                "5",
                headers={"Retry-After": "5"},
                resolution="An update is in progress; wait for its task to end.",
            )

    async def push(request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise RedfishErrorReply(
                400, "UnrecognizedRequestBody", resolution="Send multipart/form-data."
            )
        refuse_if_busy()
        try:
            async with request.form(
                max_files=len(_PARTS), max_fields=len(_PARTS), max_part_size=MAX_PARAMETERS
            ) as form:
                upload = await _receive(form.multi_items())
        except HTTPException as exc:  # starlette's verdict on a malformed multipart body
            raise RedfishErrorReply(400, "MissingOrMalformedPart") from exc
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
                raise RedfishErrorReply(
                    400, "MissingOrMalformedPart", resolution=f"Unexpected part {key}."
                )
            parts[key] = value
        if "UpdateParameters" not in parts or "UpdateFile" not in parts:
            raise RedfishErrorReply(
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
        bmc_writable = (
            setup.bmc is not None and setup.bmc.slots.standby != setup.bmc.slots.committed
        )
        targets = _targets(parameters, list(updateable()), [standby_uri] if bmc_writable else [])
        file = parts["UpdateFile"]
        if not isinstance(file, UploadFile):
            raise RedfishErrorReply(
                400, "MissingOrMalformedPart", resolution="Send UpdateFile as a file part."
            )
        path = setup.uploads / f"upload-{secrets.token_hex(8)}.img"
        try:
            size = await asyncio.to_thread(_store, file.file, path)
        except OSError as exc:
            raise RedfishErrorReply(503, "ServiceTemporarilyUnavailable", "60") from exc
        if size == 0:
            await asyncio.to_thread(path.unlink, True)
            raise RedfishErrorReply(
                400, "MissingOrMalformedPart", resolution="UpdateFile is empty."
            )
        filename = os.path.basename(file.filename or "") or "image"
        return ImageUpload(path, filename, size, {**parameters, "Targets": targets}, oem)

    async def update(task: Task, upload: ImageUpload, name: str) -> None:
        targets: list[str] = list(upload.parameters["Targets"])
        task.progress(10, "Update.TargetDetermined", ", ".join(targets), name)
        try:
            image = await asyncio.to_thread(setup.verifier, upload)
        except ImageRejected as exc:
            raise RedfishErrorReply(
                400, "Update.VerificationFailed", name, ", ".join(targets), resolution=str(exc)
            ) from exc
        task.progress(50)
        slots = updateable()
        for target in targets:
            if target == standby_uri and setup.bmc is not None:
                await install_bmc(task, upload, image, name)
                continue
            slot = slots.get(target)
            if slot is None:  # the slots changed while the task ran
                raise RedfishErrorReply(409, "Update.ApplyFailed", name, target)
            try:
                await setup.slots.install(upload, image, slot.name)
            except (BmcError, OSError) as exc:
                raise RedfishErrorReply(
                    500, "Update.ApplyFailed", name, target, resolution=str(exc)
                ) from exc
            task.progress(90, "Update.UpdateSuccessful", target, f"{image.name} {image.version}")

    async def install_bmc(task: Task, upload: ImageUpload, image: VerifiedImage, name: str) -> None:
        assert setup.bmc is not None
        try:
            slot = await setup.bmc.install(upload.path, image.version)
        except ImageRejected as exc:
            raise RedfishErrorReply(
                400, "Update.VerificationFailed", name, standby_uri, resolution=str(exc)
            ) from exc
        except (BmcError, OSError) as exc:
            raise RedfishErrorReply(
                500, "Update.ApplyFailed", name, standby_uri, resolution=str(exc)
            ) from exc
        task.progress(90, "Update.UpdateSuccessful", standby_uri, f"{image.name} {image.version}")
        if slot is None:  # a repeated push (e.g. by a controller that took over): done already
            ctx.log.info(f"BMC firmware {image.version} already runs or is armed: nothing to do")
            return
        ctx.log.info(f"BMC firmware {image.version} written to slot {slot}")
        if upload.parameters.get("@Redfish.OperationApplyTime", "Immediate") == "Immediate":
            await setup.bmc.reset()  # the host restarts the BMC after this task has ended

    return [
        route(SERVICE, GET=service),
        route(INVENTORY, GET=firmware),
        route(f"{INVENTORY}/{{item_id}}", GET=one_item),
        route(MULTIPART, POST=push),
    ]
