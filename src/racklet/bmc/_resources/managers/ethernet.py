"""``Managers/bmc/EthernetInterfaces``: the BMC's own management port (its MAC from the
board's identity; a board that cannot say lists none)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.odata import collection
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, respond
from racklet.bmc._resources.common import NIC, interface
from racklet.bmc._resources.managers.common import mine
from racklet.bmc._state.context import BmcContext


def _path(ctx: BmcContext) -> str:
    return f"{ctx.manager_path}/EthernetInterfaces"


async def interfaces(ctx: BmcContext, request: Request) -> Response:
    mine(request)
    members = [] if ctx.board.identity is None else [f"{_path(ctx)}/{NIC}"]
    return respond(
        collection(
            "EthernetInterfaceCollection", _path(ctx), "BMC Ethernet", page(request, members)
        )
    )


async def ethernet(ctx: BmcContext, request: Request) -> Response:
    mine(request)
    identity = ctx.board.identity
    if identity is None or request.path_params["item_id"] != NIC:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "EthernetInterface", request.path_params["item_id"]
        )
    name = f"Management port of the BMC of {ctx.unit}"
    server = request.scope.get("server") or (None, None)
    # The address this request reached is the BMC's own: what the request itself proves.
    addresses = [server[0]] if isinstance(server[0], str) and ":" not in server[0] else []
    host = f"{ctx.unit}-bmc"
    return respond(interface(_path(ctx), name, identity.bmc_mac, host, True, addresses))
