"""Push subscriptions of the RMC's EventService: the BMC's mechanism
(:mod:`racklet.bmc._state.subscriptions`, through ``racklet.bmc.login``), fed every event the
RMC relays (every BMC's and its own, URIs as the aggregate shows them)."""

from __future__ import annotations

from starlette.routing import Route

from racklet.bmc import login
from racklet.bmc.login import RETRY_ATTEMPTS, RETRY_INTERVAL_SECONDS, SUBSCRIPTIONS

__all__ = ["RETRY_ATTEMPTS", "RETRY_INTERVAL_SECONDS", "SUBSCRIPTIONS", "Subscriptions"]


class Subscriptions(login.Subscriptions):
    def routes(self) -> list[Route]:
        return login.subscription_routes(self)
