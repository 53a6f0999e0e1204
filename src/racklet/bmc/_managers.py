"""``Managers``: the BMC itself (ManagerType BMC), what it manages and its firmware."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._context import MANAGER_ID, BmcContext
from racklet.bmc._errors import RedfishError
from racklet.bmc._http import page, respond, route
from racklet.bmc._schema import ROOT, collection, link, resource

MANAGERS = f"{ROOT}/Managers"


def routes(ctx: BmcContext) -> list[Route]:
    async def managers(request: Request) -> Response:
        members = page(request, [ctx.manager_path])
        return respond(collection("ManagerCollection", MANAGERS, "Manager Collection", members))

    async def manager(request: Request) -> Response:
        if request.path_params["manager_id"] != MANAGER_ID:
            raise RedfishError(
                404, "ResourceNotFound", "Manager", request.path_params["manager_id"]
            )
        return respond(
            resource(
                "Manager",
                ctx.manager_path,
                Id=MANAGER_ID,
                Name=f"BMC of {ctx.unit}",
                ManagerType="BMC",
                Model="Racklet BMC",
                FirmwareVersion=ctx.firmware_version,
                UUID=ctx.uuid,
                ServiceEntryPointUUID=ctx.uuid,
                PowerState="On",
                DateTime=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                Status={"State": "Enabled", "Health": "OK"},
                LogServices=link(f"{ctx.manager_path}/LogServices"),
                Links={
                    "ManagerForServers": [link(ctx.system_path)],
                    "ManagerForChassis": [link(ctx.chassis_path)],
                },
            )
        )

    return [
        route(MANAGERS, GET=managers),
        route(f"{MANAGERS}/{{manager_id}}", GET=manager),
    ]
