"""``Managers``: the BMC itself (``manager``, with its Reset) and the network protocols it
serves (``network_protocol``)."""

from __future__ import annotations

from functools import partial

from starlette.routing import BaseRoute

from racklet.bmc._http.responses import route
from racklet.bmc._http.uris import MANAGERS
from racklet.bmc._resources.managers import ethernet, manager, network_protocol
from racklet.bmc._state.context import BmcContext

ITEM = f"{MANAGERS}/{{manager_id}}"


def routes(ctx: BmcContext) -> list[BaseRoute]:
    return [
        route(MANAGERS, GET=partial(manager.managers, ctx)),
        route(ITEM, GET=partial(manager.get, ctx)),
        route(
            f"{ITEM}/NetworkProtocol",
            GET=partial(network_protocol.get, ctx),
            PATCH=partial(network_protocol.patch, ctx),
        ),
        route(f"{ITEM}/Actions/{manager.RESET_ACTION}", POST=partial(manager.reset, ctx)),
        route(f"{ITEM}/EthernetInterfaces", GET=partial(ethernet.interfaces, ctx)),
        route(
            f"{ITEM}/EthernetInterfaces/{{item_id}}",
            GET=partial(ethernet.ethernet, ctx),
            PATCH=partial(ethernet.patch, ctx),
        ),
    ]
