"""What every Manager resource shares: the one manager id this BMC answers for."""

from __future__ import annotations

from starlette.requests import Request

from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._state.context import MANAGER_ID


def mine(request: Request) -> None:
    """404 unless the request names this BMC (``Managers/bmc``)."""
    if request.path_params["manager_id"] != MANAGER_ID:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "Manager", request.path_params["manager_id"]
        )
