"""``Systems``: the unit as a ComputerSystem: power state, boot progress and override, Reset.

Allowable values are declared once here and drive both the resource body and the
validation of PATCH and of the Reset action.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._context import BmcContext
from racklet.bmc._http import (
    check_if_match,
    no_content,
    page,
    principal,
    read_object,
    read_patch,
    respond,
    route,
    tagged,
)
from racklet.bmc._idempotency import HEADER as IDEMPOTENCY_HEADER
from racklet.bmc._idempotency import OnceByKey
from racklet.bmc._message_registry import RedfishErrorReply
from racklet.bmc._power import RESET_TYPES
from racklet.bmc._schema import ROOT, collection, link, resource
from racklet.hw import BootSource

SYSTEMS = f"{ROOT}/Systems"
MAX_CONSOLES = 4
"""WebSocket console watchers at once (each is a read-only copy of the UART)."""
RESET_ACTION = "ComputerSystem.Reset"
RESET_REQUESTED = "Racklet.1.0.ResetRequested"
"""The EventLog record of a Reset: args (unit, ResetType, who: account or SPIFFE ID)."""
# Redfish boot targets -> the board's boot-source select. Racklet has no TFTP (the network
# is hostile), so both network targets mean the boot ROM's HTTPS boot.
TARGET_SOURCE = {
    "Pxe": BootSource.NETWORK,
    "UefiHttp": BootSource.NETWORK,
    "SDCard": BootSource.SD_CARD,
    "Usb": BootSource.USB,
}
OVERRIDE_TARGETS = ("None", *TARGET_SOURCE)
OVERRIDE_ENABLED = ("Disabled", "Continuous")
_WRITABLE_BOOT = ("BootSourceOverrideTarget", "BootSourceOverrideEnabled")


class BootOverride:
    """The Boot override as Redfish shows it, applied to the board's boot-source select."""

    def __init__(self, ctx: BmcContext) -> None:
        self._ctx = ctx
        self.default = ctx.board.boot_select.get()
        self.target = "None"
        self.enabled = "Disabled"

    def apply(self, target: str, enabled: str) -> None:
        self.target, self.enabled = target, enabled
        active = enabled != "Disabled" and target != "None"
        self._ctx.board.boot_select.set(TARGET_SOURCE[target] if active else self.default)
        self._ctx.log.info(f"boot override {target} {enabled}")

    def redfish(self) -> dict[str, Any]:
        return {
            "BootSourceOverrideTarget": self.target,
            "BootSourceOverrideTarget@Redfish.AllowableValues": list(OVERRIDE_TARGETS),
            "BootSourceOverrideEnabled": self.enabled,
            "BootSourceOverrideEnabled@Redfish.AllowableValues": list(OVERRIDE_ENABLED),
        }


def system_body(ctx: BmcContext, override: BootOverride) -> dict[str, Any]:
    path = ctx.system_path
    conditions = ctx.boot.conditions()
    status: dict[str, Any] = {
        "State": "Enabled" if ctx.present() else "Absent",
        "Health": "Critical" if conditions else "OK",
    }
    if conditions:
        status["Conditions"] = conditions
    return resource(
        "ComputerSystem",
        path,
        Id=ctx.unit,
        Name=f"Racklet unit {ctx.unit}",
        SystemType="Physical",
        PowerState=ctx.power.power_state(),
        Status=status,
        BootProgress=ctx.boot.redfish(),
        Boot=override.redfish(),
        LogServices=link(f"{path}/LogServices"),
        Certificates=link(f"{path}/Certificates"),
        Links={"Chassis": [link(ctx.chassis_path)], "ManagedBy": [link(ctx.manager_path)]},
        SerialConsole={
            "MaxConcurrentSessions": MAX_CONSOLES,
            "WebSocket": {
                "ServiceEnabled": True,
                "ConsoleURI": f"{path}/SerialConsole/WebSocket",
                "Interactive": False,
            },
        },
        Actions={
            f"#{RESET_ACTION}": {
                "target": f"{path}/Actions/{RESET_ACTION}",
                "@Redfish.ActionInfo": f"{path}/ResetActionInfo",
                "ResetType@Redfish.AllowableValues": list(RESET_TYPES),
            }
        },
    )


def reset_action_info(ctx: BmcContext) -> dict[str, Any]:
    return resource(
        "ActionInfo",
        f"{ctx.system_path}/ResetActionInfo",
        Id="ResetActionInfo",
        Name="Reset Action Info",
        Parameters=[
            {
                "Name": "ResetType",
                "Required": True,
                "DataType": "String",
                "AllowableValues": list(RESET_TYPES),
            }
        ],
    )


def _check_reset(body: dict[str, Any]) -> str:
    for name in body:
        if name != "ResetType":
            raise RedfishErrorReply(400, "ActionParameterUnknown", RESET_ACTION, name)
    if "ResetType" not in body:
        raise RedfishErrorReply(400, "ActionParameterMissing", RESET_ACTION, "ResetType")
    value = body["ResetType"]
    allowed = f"Use one of: {', '.join(RESET_TYPES)}."
    if not isinstance(value, str):
        raise RedfishErrorReply(
            400,
            "ActionParameterValueTypeError",
            json.dumps(value),
            "ResetType",
            RESET_ACTION,
            resolution=allowed,
        )
    if value not in RESET_TYPES:
        raise RedfishErrorReply(
            400,
            "ActionParameterValueNotInList",
            value,
            "ResetType",
            RESET_ACTION,
            resolution=allowed,
        )
    return value


def _check_patch(
    body: dict[str, Any], current: dict[str, Any], override: BootOverride
) -> tuple[str, str]:
    target, enabled = override.target, override.enabled
    for name, value in body.items():
        if name != "Boot":
            key = "PropertyNotWritable" if name in current else "PropertyUnknown"
            raise RedfishErrorReply(400, key, name)
        if not isinstance(value, dict):
            raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(value), "Boot")
        for sub, subvalue in value.items():
            pointer = f"Boot/{sub}"
            if sub not in _WRITABLE_BOOT:
                key = "PropertyNotWritable" if sub in current["Boot"] else "PropertyUnknown"
                raise RedfishErrorReply(400, key, pointer)
            allowed = OVERRIDE_TARGETS if sub == "BootSourceOverrideTarget" else OVERRIDE_ENABLED
            if not isinstance(subvalue, str):
                raise RedfishErrorReply(
                    400, "PropertyValueTypeError", json.dumps(subvalue), pointer
                )
            if subvalue not in allowed:
                raise RedfishErrorReply(
                    400,
                    "PropertyValueNotInList",
                    subvalue,
                    pointer,
                    resolution=f"Use one of: {', '.join(allowed)}.",
                )
            if sub == "BootSourceOverrideTarget":
                target = subvalue
            else:
                enabled = subvalue
    return target, enabled


def routes(ctx: BmcContext) -> list[Route]:
    override = BootOverride(ctx)
    resets = OnceByKey()  # a reset repeated with its Idempotency-Key is carried out once

    def _mine(request: Request) -> None:
        if request.path_params["system_id"] != ctx.unit:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "ComputerSystem", request.path_params["system_id"]
            )

    async def systems(request: Request) -> Response:
        members = page(request, [ctx.system_path])
        return respond(
            collection("ComputerSystemCollection", SYSTEMS, "Computer System Collection", members)
        )

    async def get_system(request: Request) -> Response:
        _mine(request)
        return tagged(request, system_body(ctx, override))

    async def patch_system(request: Request) -> Response:
        _mine(request)
        body = await read_patch(request)
        # No await from here on: the If-Match check and the write are one atomic step.
        current = system_body(ctx, override)
        check_if_match(request, current)
        target, enabled = _check_patch(body, current, override)
        override.apply(target, enabled)
        return tagged(request, system_body(ctx, override))

    async def action_info(request: Request) -> Response:
        _mine(request)
        return respond(reset_action_info(ctx))

    async def reset(request: Request) -> Response:
        _mine(request)
        reset_type = _check_reset(await read_object(request))
        key = request.headers.get(IDEMPOTENCY_HEADER)
        who = principal(request).username

        async def carry_out() -> None:
            # Who asked, in the EventLog: a controller tells its own resets from a user's.
            ctx.events.publish(
                RESET_REQUESTED,
                f"ResetType {reset_type} of '{ctx.unit}' requested by {who}.",
                (ctx.unit, reset_type, who),
                "OK",
                ctx.system_path,
            )
            await ctx.power.reset(reset_type)

        await resets.run(key, reset_type, carry_out)
        return no_content()

    item = f"{SYSTEMS}/{{system_id}}"
    return [
        route(SYSTEMS, GET=systems),
        route(item, GET=get_system, PATCH=patch_system),
        route(f"{item}/Actions/{RESET_ACTION}", POST=reset),
        route(f"{item}/ResetActionInfo", GET=action_info),
    ]
