"""Events and logs: the ``EventService`` and its SSE stream (``event_service``), its push
``subscriptions``, the Manager's EventLog and the unit's console log (``logs``)."""

from __future__ import annotations

from functools import partial

from starlette.routing import BaseRoute

from racklet.bmc._http.responses import route
from racklet.bmc._http.uris import EVENT_SERVICE
from racklet.bmc._resources.events import event_service, logs, subscriptions
from racklet.bmc._state.context import BmcContext


def routes(ctx: BmcContext) -> list[BaseRoute]:
    return [
        route(EVENT_SERVICE, GET=partial(event_service.service, ctx)),
        route(event_service.SSE, GET=partial(event_service.stream, ctx)),
        *logs.event_log_routes(ctx.manager_path, ctx.events, ctx.log, "BMC"),
        *logs.ConsoleLogService(ctx).routes(),
        *(
            []
            if ctx.subscriptions is None
            else subscriptions.subscription_routes(ctx.subscriptions)
        ),
    ]
