"""``UpdateService``: the firmware inventory and the multipart push of a signed image.

A push (``MultipartHttpPushUri``) carries an ``UpdateParameters`` JSON part and an
``UpdateFile`` part, as the Redfish specification's "Multipart HTTP push updates" asks. A
well-formed push is stored (0600, in the BMC's own storage) and answered 202 with a Task;
the task verifies the image (the configured :data:`~racklet.bmc.ImageVerifier`), then hands
it to the unit's :class:`~racklet.bmc.SlotProvider`. The stored upload is deleted when the
task ends, whatever the outcome: nothing unverified stays on the BMC.

The BMC's own firmware has two slots too (:mod:`racklet.bmc._state.bmc_slots`): ``bmc`` is the
running one, ``bmc-standby`` the other. A push naming ``bmc-standby`` (or ``bmc``: the
BMC firmware, which is updated through its standby slot, as an A/B BMC such as OpenBMC's
takes a push naming its running image) writes it; with ``@Redfish.OperationApplyTime``
``Immediate`` the BMC then try-boots it at once (it restarts); with ``OnReset`` it waits for
``Manager.Reset``. A unit OS payload goes to the unit's slots (``slot-a``/``slot-b``: the
provider writes the one not committed, whichever is named, and arms it as the trial; a
running unit restarts into it with ``Immediate``, else its next reset tries it). What an
image is decides where it may go, once verified (:attr:`VerifiedImage.os_payload`); a push
naming no target goes there.

Deliberately not here: ``SimpleUpdate`` (the BMC would have to fetch an image from a URL the
client names, i.e. open connections on a client's say-so).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from racklet.bmc._http.declared import Declared, Resource, validate_create
from racklet.bmc._http.odata import collection, link
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, parse_object, respond, route
from racklet.bmc._http.uris import FIRMWARE_INVENTORY as INVENTORY
from racklet.bmc._http.uris import UPDATE_SERVICE as SERVICE
from racklet.bmc._resources.update.inventory import (
    BMC_FIRMWARE,
    BMC_STANDBY,
    ab_slots,
    inventory,
    slot_id,
)
from racklet.bmc._state.ab import AbState
from racklet.bmc._state.bmc_runtime import BmcFirmware
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.firmware import (
    BootSlot,
    ImageUpload,
    ImageVerifier,
    SlotProvider,
    VerifiedImage,
)
from racklet.bmc._state.tasks import Task, TaskRegistry
from racklet.bmc.errors import BmcError, ImageRejected, SlotBusy, StateError
from racklet.config import make_dir

MULTIPART = f"{SERVICE}/update-multipart"
MAX_IMAGE = 64 * 1024 * 1024
"""Largest firmware image a multipart push may carry."""
MAX_PARAMETERS = 16 * 1024
"""Largest ``UpdateParameters`` or ``OemParameters`` part."""
_PARTS = ("UpdateParameters", "UpdateFile", "OemParameters")
_BOOTSTRAP = ("None", "SystemHardwareInitializationComplete")
"""BootProgress states of a powered unit whose bootstrap has not chosen its slot yet."""


@dataclass(frozen=True)
class UpdateSetup:
    """What a push needs besides the BMC context: the two seams and where uploads go."""

    verifier: ImageVerifier
    slots: SlotProvider
    uploads: Path
    bmc: BmcFirmware | None = None
    """The BMC's own firmware slots; None: the BMC firmware is listed read-only."""
    ab: AbState | None = None
    """The unit's A/B state, for the versions its slots hold."""


class UpdateService(Resource):
    redfish_type = "UpdateService"

    Id: str = "UpdateService"
    Name: str = "Update Service"
    ServiceEnabled: bool = True
    MultipartHttpPushUri: str
    MaxImageSizeBytes: int
    FirmwareInventory: dict[str, str]
    Status: dict[str, str]


def _json_part(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, UploadFile):
        raise RedfishErrorReply(400, "MissingOrMalformedPart", resolution=f"Send {name} as JSON.")
    if not str(value).strip():
        raise RedfishErrorReply(400, "MalformedJSON")
    return parse_object(value)


class UpdateParameters(Declared):
    """The ``UpdateParameters`` part of a multipart push."""

    Targets: list[str] = Field(default_factory=list)
    OperationApplyTime: Literal["Immediate", "OnReset"] = Field(
        "Immediate", alias="@Redfish.OperationApplyTime"
    )


def _targets(
    parameters: Mapping[str, Any],
    updateable: list[str],
    explicit: list[str],
    aliases: Mapping[str, str] | None = None,
) -> list[str]:
    """The inventory URIs the push names (each must be updateable or ``explicit``); an
    ``aliases`` key named is written as its value (``bmc`` as ``bmc-standby``). None named:
    the image decides, once verified (a unit OS payload its unit's slots, BMC firmware the
    standby slot)."""
    aliases = aliases or {}
    checked = validate_create(UpdateParameters, dict(parameters), prefix="UpdateParameters/")
    accepted = (*updateable, *explicit, *aliases)
    for target in checked.Targets:
        if target.rstrip("/") not in accepted:
            raise RedfishErrorReply(
                400,
                "PropertyValueNotInList",
                target,
                "Targets",
                resolution=f"Use one of: {', '.join(accepted)}.",
            )
    chosen = [aliases.get(t.rstrip("/"), t.rstrip("/")) for t in checked.Targets]
    if not chosen and not updateable and not explicit:
        raise RedfishErrorReply(400, "ActionParameterMissing", "MultipartHttpPushUri", "Targets")
    return sorted(set(chosen))


def _store(source: IO[bytes], target: Path) -> int:
    """Copy an upload into the BMC's storage (0600); its size."""
    make_dir(target.parent)
    source.seek(0)
    with open(target, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
        return out.tell()


class UpdateResources:
    """The UpdateService, its inventory and the multipart push of one BMC."""

    def __init__(self, ctx: BmcContext, setup: UpdateSetup, registry: TaskRegistry) -> None:
        self.ctx, self.setup, self.registry = ctx, setup, registry
        self.standby_uri = f"{INVENTORY}/{BMC_STANDBY}"

    async def inventory(self) -> dict[str, dict[str, Any]]:
        ab = None
        if self.setup.ab is not None:
            try:
                ab = ab_slots(await asyncio.to_thread(self.setup.ab.load))
            except StateError as exc:  # unreadable: the slots show what the provider knows
                self.ctx.log.warning(f"A/B state unreadable for the inventory: {exc}")
        return inventory(self.ctx, self.setup.bmc, self.setup.slots.slots(), ab)

    def updateable(self) -> dict[str, BootSlot]:
        slots = self.setup.slots.slots()
        return {f"{INVENTORY}/{slot_id(slot)}": slot for slot in slots if slot.updateable}

    async def service(self, request: Request) -> Response:
        declared = UpdateService(
            Id="UpdateService",
            Name="Update Service",
            ServiceEnabled=True,
            MultipartHttpPushUri=MULTIPART,
            MaxImageSizeBytes=MAX_IMAGE,
            FirmwareInventory=link(INVENTORY),
            Status={"State": "Enabled", "Health": "OK"},
        )
        return respond(declared.body(SERVICE))

    async def firmware(self, request: Request) -> Response:
        members = page(request, [f"{INVENTORY}/{name}" for name in await self.inventory()])
        return respond(
            collection("SoftwareInventoryCollection", INVENTORY, "Firmware Inventory", members)
        )

    async def one_item(self, request: Request) -> Response:
        item = (await self.inventory()).get(request.path_params["item_id"])
        if item is None:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "SoftwareInventory", request.path_params["item_id"]
            )
        return respond(item)

    def refuse_if_busy(self) -> None:
        if self.registry.busy("POST", MULTIPART):
            raise RedfishErrorReply(
                503,
                "ServiceTemporarilyUnavailable",
                "5",
                headers={"Retry-After": "5"},
                resolution="An update is in progress; wait for its task to end.",
            )

    async def push(self, request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise RedfishErrorReply(
                400, "UnrecognizedRequestBody", resolution="Send multipart/form-data."
            )
        self.refuse_if_busy()
        try:
            async with request.form(
                max_files=len(_PARTS), max_fields=len(_PARTS), max_part_size=MAX_PARAMETERS
            ) as form:
                upload = await self._receive(form.multi_items())
        except HTTPException as exc:  # starlette's verdict on a malformed multipart body
            raise RedfishErrorReply(400, "MissingOrMalformedPart") from exc
        self.refuse_if_busy()  # checked again: no await between here and the task's start
        name = upload.filename

        async def work(task: Task) -> None:
            try:
                await self.update(task, upload, name)
            finally:
                await asyncio.to_thread(upload.path.unlink, True)

        task = self.registry.start(f"Update with {name}", "POST", MULTIPART, work)
        self.ctx.log.info(f"firmware push {name} ({upload.size} bytes) as task {task.id}")
        return respond(task.redfish(), 202, {"Location": task.monitor})

    async def _receive(self, items: list[tuple[str, str | UploadFile]]) -> ImageUpload:
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
            self.setup.bmc is not None
            and self.setup.bmc.slots.standby != self.setup.bmc.slots.committed
        )
        targets = _targets(
            parameters,
            list(self.updateable()),
            [self.standby_uri] if bmc_writable else [],
            {f"{INVENTORY}/{BMC_FIRMWARE}": self.standby_uri} if bmc_writable else {},
        )
        file = parts["UpdateFile"]
        if not isinstance(file, UploadFile):
            raise RedfishErrorReply(
                400, "MissingOrMalformedPart", resolution="Send UpdateFile as a file part."
            )
        path = self.setup.uploads / f"upload-{secrets.token_hex(8)}.img"
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

    async def update(self, task: Task, upload: ImageUpload, name: str) -> None:
        named: list[str] = list(upload.parameters["Targets"])
        task.progress(10, "Update.TargetDetermined", ", ".join(named) or "(by the image)", name)
        try:
            image = await asyncio.to_thread(self.setup.verifier, upload)
        except ImageRejected as exc:
            raise RedfishErrorReply(
                400, "Update.VerificationFailed", name, ", ".join(named), resolution=str(exc)
            ) from exc
        task.progress(50)
        for target in self._fitting(image, named, name):
            if target == self.standby_uri and self.setup.bmc is not None:
                await self.install_bmc(task, upload, image, name)
            else:
                await self.install_os(task, upload, image, name, target)

    def _fitting(self, image: VerifiedImage, named: list[str], name: str) -> list[str]:
        """The targets the verified image goes to: a unit OS payload to the unit's slots (one
        install, whichever slot is named), BMC firmware to the standby slot; a target of the
        other kind is refused."""
        slots = sorted(self.updateable())
        if image.os_payload is not None:
            wrong = [t for t in named if t not in slots]
            chosen = [t for t in named if t in slots][:1] or slots[:1]
            kind = "a unit OS payload"
        else:
            wrong = [t for t in named if t != self.standby_uri]
            chosen = [self.standby_uri] if self.setup.bmc is not None and not wrong else []
            kind = "BMC firmware"
        if wrong or not chosen:
            where = ", ".join(wrong) or "this BMC"
            raise RedfishErrorReply(
                400,
                "Update.VerificationFailed",
                name,
                where,
                resolution=f"{image.name} {image.version} is {kind}; {where} cannot take it.",
            )
        return chosen

    async def install_os(
        self, task: Task, upload: ImageUpload, image: VerifiedImage, name: str, target: str
    ) -> None:
        """Write a unit OS payload into the unit's inactive slot and arm it as the trial."""
        slot = self.updateable().get(target)
        if slot is None:  # the slots changed while the task ran
            raise RedfishErrorReply(409, "Update.ApplyFailed", name, target)
        if self.ctx.board.power_switch.is_on() and self.ctx.boot.last_state in _BOOTSTRAP:
            # its bootstrap may be writing the same slot from its channel right now
            raise RedfishErrorReply(
                409,
                "Update.ApplyFailed",
                name,
                target,
                resolution="The unit's bootstrap is running; push again once its OS runs.",
            )
        try:
            written = await self.setup.slots.install(upload, image, slot.name)
        except ImageRejected as exc:
            raise RedfishErrorReply(
                400, "Update.VerificationFailed", name, target, resolution=str(exc)
            ) from exc
        except SlotBusy as exc:
            raise RedfishErrorReply(
                409, "Update.ApplyFailed", name, target, resolution=str(exc)
            ) from exc
        except (BmcError, OSError) as exc:
            raise RedfishErrorReply(
                500, "Update.ApplyFailed", name, target, resolution=str(exc)
            ) from exc
        uri = f"{INVENTORY}/slot-{written.lower()}"
        task.progress(90, "Update.UpdateSuccessful", uri, f"{image.name} {image.version}")
        self.ctx.log.info(f"unit OS {image.version} written to slot {written}, armed as trial")
        apply_time = upload.parameters.get("@Redfish.OperationApplyTime", "Immediate")
        if apply_time == "Immediate" and self.ctx.board.power_switch.is_on():
            await self.ctx.power.reset("ForceRestart")  # the boot tries the new slot

    async def install_bmc(
        self, task: Task, upload: ImageUpload, image: VerifiedImage, name: str
    ) -> None:
        assert self.setup.bmc is not None
        try:
            slot = await self.setup.bmc.install(upload.path, image.version)
        except ImageRejected as exc:
            raise RedfishErrorReply(
                400, "Update.VerificationFailed", name, self.standby_uri, resolution=str(exc)
            ) from exc
        except (BmcError, OSError) as exc:
            raise RedfishErrorReply(
                500, "Update.ApplyFailed", name, self.standby_uri, resolution=str(exc)
            ) from exc
        task.progress(
            90, "Update.UpdateSuccessful", self.standby_uri, f"{image.name} {image.version}"
        )
        if slot is None:  # a repeated push (e.g. by a controller that took over): done already
            self.ctx.log.info(
                f"BMC firmware {image.version} already runs or is armed: nothing to do"
            )
            return
        self.ctx.log.info(f"BMC firmware {image.version} written to slot {slot}")
        if upload.parameters.get("@Redfish.OperationApplyTime", "Immediate") == "Immediate":
            await self.setup.bmc.reset()  # the host restarts the BMC after this task has ended


def routes(ctx: BmcContext, setup: UpdateSetup, registry: TaskRegistry) -> list[BaseRoute]:
    res = UpdateResources(ctx, setup, registry)
    return [
        route(SERVICE, GET=res.service),
        route(INVENTORY, GET=res.firmware),
        route(f"{INVENTORY}/{{item_id}}", GET=res.one_item),
        route(MULTIPART, POST=res.push),
    ]
