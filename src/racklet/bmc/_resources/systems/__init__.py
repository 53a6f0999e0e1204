"""``Systems``: the unit as a ComputerSystem (``system``), its boot override (``boot``) and
its serial console over WebSocket (``serial_console``)."""

from __future__ import annotations

from functools import partial

from starlette.routing import BaseRoute

from racklet.bmc._http.responses import route
from racklet.bmc._http.uris import SYSTEMS
from racklet.bmc._resources.systems import inventory, serial_console
from racklet.bmc._resources.systems.system import RESET_ACTION, SystemResource
from racklet.bmc._state.context import BmcContext

ITEM = f"{SYSTEMS}/{{system_id}}"


def routes(ctx: BmcContext) -> list[BaseRoute]:
    system = SystemResource(ctx)
    return [
        route(SYSTEMS, GET=system.collection),
        route(ITEM, GET=system.get, PATCH=system.patch),
        route(f"{ITEM}/Actions/{RESET_ACTION}", POST=system.reset),
        route(f"{ITEM}/ResetActionInfo", GET=system.action_info),
        serial_console.route(ctx),
        route(f"{ITEM}/Processors", GET=partial(inventory.processors, ctx)),
        route(f"{ITEM}/Processors/{{item_id}}", GET=partial(inventory.processor, ctx)),
        route(f"{ITEM}/Memory", GET=partial(inventory.memories, ctx)),
        route(f"{ITEM}/Memory/{{item_id}}", GET=partial(inventory.memory, ctx)),
        route(f"{ITEM}/EthernetInterfaces", GET=partial(inventory.interfaces, ctx)),
        route(f"{ITEM}/EthernetInterfaces/{{item_id}}", GET=partial(inventory.ethernet, ctx)),
    ]
