"""What every Manager resource shares: the one manager id this BMC answers for, and the
network settings both the Ethernet interface and NetworkProtocol show."""

from __future__ import annotations

from starlette.requests import Request

from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._state.context import MANAGER_ID, BmcContext
from racklet.bmc._state.network import NetworkSettings
from racklet.bmc.errors import StateError


def mine(request: Request) -> None:
    """404 unless the request names this BMC (``Managers/bmc``)."""
    if request.path_params["manager_id"] != MANAGER_ID:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "Manager", request.path_params["manager_id"]
        )


async def network_settings(ctx: BmcContext) -> NetworkSettings:
    """The configured network settings (read from storage on first use)."""
    try:
        return await ctx.network.get()
    except StateError as exc:
        ctx.log.error(str(exc))
        raise RedfishErrorReply(500, "InternalError") from exc
