"""Who may do what: the DMTF Redfish privilege model, per route.

The three predefined roles carry the DMTF privileges (Redfish spec, "Roles"): Administrator
all of them, Operator ``Login``, ``ConfigureComponents`` and ``ConfigureSelf``, ReadOnly
``Login`` and ``ConfigureSelf``. :func:`required` names the privilege a request needs,
following the DMTF privilege registry (Redfish_1.5.0_PrivilegeRegistry) for the resources
this BMC serves: reading needs ``Login``; changing a system, chassis, firmware or an event
subscription needs ``ConfigureComponents``; the manager, sessions and services need
``ConfigureManager``; accounts need ``ConfigureUsers``; one's own session and password
need only ``ConfigureSelf`` (the handler then limits what may change).

One more role, for machines: ``RackController`` (the controller's client certificate) holds
Operator's privileges plus the OEM privilege ``RackletConfigureCertificates``, which is what
``CertificateService`` needs here (Administrator holds it too). So the controller renews the
BMC's and the unit's certificates without the BMC admin password and without
``ConfigureManager`` or ``ConfigureUsers``. It is for certificate logins only: no password
account can have it. The RMC's certificate is an Operator.
"""

from __future__ import annotations

from racklet.bmc._http.odata import ROOT

LOGIN = "Login"
CONFIGURE_MANAGER = "ConfigureManager"
CONFIGURE_USERS = "ConfigureUsers"
CONFIGURE_COMPONENTS = "ConfigureComponents"
CONFIGURE_SELF = "ConfigureSelf"
CONFIGURE_CERTIFICATES = "RackletConfigureCertificates"
"""OEM privilege: make keys and install certificates through CertificateService."""
OEM_PRIVILEGES = (CONFIGURE_CERTIFICATES,)

ROLE_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "Administrator": (
        LOGIN,
        CONFIGURE_MANAGER,
        CONFIGURE_USERS,
        CONFIGURE_COMPONENTS,
        CONFIGURE_SELF,
        CONFIGURE_CERTIFICATES,
    ),
    "Operator": (LOGIN, CONFIGURE_COMPONENTS, CONFIGURE_SELF),
    "ReadOnly": (LOGIN, CONFIGURE_SELF),
    "RackController": (LOGIN, CONFIGURE_COMPONENTS, CONFIGURE_SELF, CONFIGURE_CERTIFICATES),
}

ACCOUNTS = f"{ROOT}/AccountService/Accounts"
SESSIONS = f"{ROOT}/SessionService/Sessions"

# Longest prefix first: the privilege a write below that path needs.
_WRITE_RULES: tuple[tuple[str, str], ...] = (
    (f"{ROOT}/CertificateService", CONFIGURE_CERTIFICATES),
    (f"{ROOT}/AggregationService/Actions", CONFIGURE_COMPONENTS),  # the RMC's Reset
    (f"{ROOT}/AggregationService", CONFIGURE_MANAGER),
    (f"{ROOT}/EventService/Subscriptions", CONFIGURE_COMPONENTS),
    (f"{ROOT}/AccountService", CONFIGURE_USERS),
    (f"{ROOT}/SessionService", CONFIGURE_MANAGER),
    (f"{ROOT}/Managers", CONFIGURE_MANAGER),
    (f"{ROOT}/EventService", CONFIGURE_MANAGER),
    (f"{ROOT}/TaskService", CONFIGURE_MANAGER),
    (f"{ROOT}/UpdateService", CONFIGURE_COMPONENTS),
    (f"{ROOT}/Systems", CONFIGURE_COMPONENTS),
    (f"{ROOT}/Chassis", CONFIGURE_COMPONENTS),
)


def privileges(role: str) -> tuple[str, ...]:
    return ROLE_PRIVILEGES.get(role, ())


def required(method: str, path: str, username: str, session_id: str | None) -> str:
    """The privilege ``method`` on ``path`` needs, for the caller named."""
    if method in ("GET", "HEAD"):
        return LOGIN
    if method == "DELETE" and session_id and path == f"{SESSIONS}/{session_id}":
        return CONFIGURE_SELF
    if method == "PATCH" and path == f"{ACCOUNTS}/{username}":
        return CONFIGURE_SELF
    for prefix, privilege in _WRITE_RULES:
        if path == prefix or path.startswith(prefix + "/"):
            return privilege
    return CONFIGURE_MANAGER


def allowed(role: str, method: str, path: str, username: str, session_id: str | None) -> bool:
    return required(method, path, username, session_id) in privileges(role)
