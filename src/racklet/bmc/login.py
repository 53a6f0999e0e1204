"""Who may use a Redfish service: the BMC's accounts, sessions, login throttling,
privileges, EventLog and event subscriptions, for the RMC to serve with the same code.

One implementation, two services: the RMC builds its AccountService, SessionService,
authentication middleware and its own EventLog from these, so a fix or a policy (the
throttling of failed logins, the privilege map) holds for both; both publish the Racklet
message registry (``racklet_registry``) that the EventLogs and the BMCs' events use. What is
deliberately not here: the BMC's hardware families (systems, chassis, power), which the RMC
forwards.
"""

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.auth import AuthMiddleware
from racklet.bmc._http.registry import (
    RACKLET,
    RACKLET_VERSION,
    RedfishErrorReply,
    racklet_registry,
)
from racklet.bmc._http.responses import Principal, principal, respond
from racklet.bmc._http.uris import ACCOUNTS
from racklet.bmc._resources.accounts.account_service import routes as account_routes
from racklet.bmc._resources.accounts.sessions import routes as session_routes
from racklet.bmc._resources.events.logs import event_log_routes
from racklet.bmc._resources.events.subscriptions import subscription_routes
from racklet.bmc._state.accounts import Accounts, read_accounts
from racklet.bmc._state.events import EventBus, LoginEvents
from racklet.bmc._state.sessions import SessionStore
from racklet.bmc._state.subscriptions import (
    RETRY_ATTEMPTS,
    RETRY_INTERVAL_SECONDS,
    SUBSCRIPTIONS,
    Subscriptions,
)
from racklet.bmc._state.throttle import BackoffPolicy, LockoutPolicy, LoginThrottle


async def redfish_error(request: Request, exc: Exception) -> Response:
    """The exception handler that turns a raised :class:`RedfishErrorReply` into its answer."""
    assert isinstance(exc, RedfishErrorReply)
    return respond(exc.body(), exc.status, exc.headers)


__all__ = [
    "ACCOUNTS",
    "RACKLET",
    "RACKLET_VERSION",
    "RETRY_ATTEMPTS",
    "RETRY_INTERVAL_SECONDS",
    "SUBSCRIPTIONS",
    "Accounts",
    "AuthMiddleware",
    "BackoffPolicy",
    "EventBus",
    "LockoutPolicy",
    "LoginEvents",
    "LoginThrottle",
    "Principal",
    "RedfishErrorReply",
    "SessionStore",
    "Subscriptions",
    "account_routes",
    "event_log_routes",
    "principal",
    "racklet_registry",
    "read_accounts",
    "redfish_error",
    "session_routes",
    "subscription_routes",
]
