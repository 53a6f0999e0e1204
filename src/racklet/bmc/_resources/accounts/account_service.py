"""``AccountService``: accounts (create, change, delete), the predefined Roles (the DMTF
three and ``RackController``, for the controller's certificate), the lockout and password
policy. The RMC serves the same routes over its own accounts (:mod:`racklet.bmc.login`).

Account ids are user names, as in OpenBMC. Changing an account's password, role or
enabled state, or deleting it, ends that account's sessions: a session never outlives the
rights it was opened with. The last enabled Administrator cannot be removed or demoted, so
a BMC can always be managed.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from racklet.bmc._http.declared import (
    WRITABLE,
    Declared,
    Resource,
    Writable,
    validate_create,
    validate_patch,
)
from racklet.bmc._http.etags import check_if_match, tagged
from racklet.bmc._http.odata import collection, link
from racklet.bmc._http.privileges import (
    CONFIGURE_USERS,
    OEM_PRIVILEGES,
    ROLE_PRIVILEGES,
    privileges,
)
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import (
    no_content,
    page,
    principal,
    read_object,
    read_patch,
    respond,
    route,
)
from racklet.bmc._http.uris import ACCOUNT_SERVICE, ACCOUNTS, ROLES
from racklet.bmc._state.accounts import Account, Accounts, hash_account
from racklet.bmc._state.sessions import SessionStore
from racklet.log import ContextLogger

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
RoleId = Literal["Administrator", "Operator", "ReadOnly"]
"""The roles an account may hold (``RackController`` is a certificate's, never an account's)."""


class AccountService(Resource):
    redfish_type = "AccountService"

    Id: str = "AccountService"
    Name: str = "Account Service"
    ServiceEnabled: bool = True
    LocalAccountAuth: str = "Enabled"
    MinPasswordLength: int
    MaxPasswordLength: int
    AccountLockoutThreshold: Annotated[int, Writable(minimum=0, maximum=100)]
    AccountLockoutDuration: Annotated[int, Writable(minimum=1, maximum=86400)]
    AccountLockoutCounterResetAfter: Annotated[int, Writable(minimum=1, maximum=86400)]
    AccountLockoutCounterResetEnabled: bool = True
    SupportedAccountTypes: list[str] = Field(default_factory=lambda: ["Redfish"])
    Status: dict[str, str]
    Accounts: dict[str, str]
    Roles: dict[str, str]


# AccountService property -> the lockout policy's attribute it sets
_POLICY = {
    "AccountLockoutThreshold": "threshold",
    "AccountLockoutDuration": "duration",
    "AccountLockoutCounterResetAfter": "reset_after",
}


class ManagerAccount(Resource):
    redfish_type = "ManagerAccount"

    Id: str
    Name: str = "User Account"
    UserName: str
    RoleId: Annotated[RoleId, WRITABLE]
    Enabled: Annotated[bool, WRITABLE]
    Locked: Annotated[bool, WRITABLE]
    Password: Annotated[str | None, WRITABLE] = None
    AccountTypes: list[str]
    Links: dict[str, Any]


class NewAccount(Declared):
    """The body of a POST to ``Accounts``."""

    UserName: str
    Password: str
    RoleId: RoleId
    Enabled: bool = True


class Role(Resource):
    redfish_type = "Role"

    Id: str
    Name: str
    RoleId: str
    IsPredefined: bool = True
    AssignedPrivileges: list[str]
    OemPrivileges: list[str]


class AccountResources:
    """The AccountService, its accounts and roles over one set of accounts and sessions."""

    def __init__(self, accounts: Accounts, sessions: SessionStore, log: ContextLogger) -> None:
        self.accounts, self.sessions, self.log = accounts, sessions, log
        self.editing = asyncio.Lock()

    def account_body(self, account: Account) -> dict[str, Any]:
        return ManagerAccount(
            Id=account.username,
            Name="User Account",
            UserName=account.username,
            RoleId=account.role,  # type: ignore[arg-type]
            Enabled=account.enabled,
            Locked=self.accounts.locked(account.username),
            Password=None,
            AccountTypes=["Redfish"],
            Links={"Role": link(f"{ROLES}/{account.role}")},
        ).body(f"{ACCOUNTS}/{account.username}")

    def service_body(self) -> dict[str, Any]:
        policy = self.accounts.lockout
        return AccountService(
            Id="AccountService",
            Name="Account Service",
            ServiceEnabled=True,
            LocalAccountAuth="Enabled",
            MinPasswordLength=self.accounts.passwords.min_length,
            MaxPasswordLength=self.accounts.passwords.max_length,
            AccountLockoutThreshold=policy.threshold,
            AccountLockoutDuration=policy.duration,
            AccountLockoutCounterResetAfter=policy.reset_after,
            AccountLockoutCounterResetEnabled=True,
            Status={"State": "Enabled", "Health": "OK"},
            Accounts=link(ACCOUNTS),
            Roles=link(ROLES),
        ).body(ACCOUNT_SERVICE)

    def find(self, request: Request) -> Account:
        name = request.path_params["account_id"]
        account = self.accounts.get(name)
        caller = principal(request)
        if account is None or (
            CONFIGURE_USERS not in privileges(caller.role) and name != caller.username
        ):
            raise RedfishErrorReply(404, "ResourceNotFound", "ManagerAccount", name)
        return account

    def password(self, text: str) -> str:
        problem = self.accounts.passwords.problem(text)
        if problem:
            raise RedfishErrorReply(
                400, "PropertyValueFormatError", "******", "Password", resolution=problem
            )
        return text

    def other_admins(self, username: str) -> bool:
        return any(
            a.role == "Administrator" and a.enabled and a.username != username
            for a in self.accounts.all()
        )

    async def service(self, request: Request) -> Response:
        return tagged(request, self.service_body())

    async def patch_service(self, request: Request) -> Response:
        body = await read_patch(request)
        check_if_match(request, self.service_body())
        changes = validate_patch(AccountService, body)
        for name, value in changes.items():
            setattr(self.accounts.lockout, _POLICY[name], value)
        return tagged(request, self.service_body())

    async def list_accounts(self, request: Request) -> Response:
        caller = principal(request)
        visible = [
            a
            for a in self.accounts.all()
            if CONFIGURE_USERS in privileges(caller.role) or a.username == caller.username
        ]
        members = [f"{ACCOUNTS}/{a.username}" for a in page(request, visible)]
        return respond(collection("ManagerAccountCollection", ACCOUNTS, "Accounts", members))

    async def create(self, request: Request) -> Response:
        new = validate_create(NewAccount, await read_object(request))
        if not USERNAME.fullmatch(new.UserName):
            raise RedfishErrorReply(
                400,
                "PropertyValueFormatError",
                new.UserName,
                "UserName",
                resolution="Use 1 to 32 letters, digits, '.', '_' or '-'.",
            )
        secret = self.password(new.Password)
        if self.accounts.get(new.UserName) is not None:
            raise RedfishErrorReply(
                409, "ResourceAlreadyExists", "ManagerAccount", "UserName", new.UserName
            )
        account = await asyncio.to_thread(
            hash_account, new.UserName, secret, new.RoleId, new.Enabled
        )
        await self.accounts.put(account)
        self.log.info(f"account {new.UserName!r} created ({new.RoleId})")
        location = f"{ACCOUNTS}/{new.UserName}"
        return respond(self.account_body(account), 201, {"Location": location})

    async def get_account(self, request: Request) -> Response:
        return tagged(request, self.account_body(self.find(request)))

    async def patch_account(self, request: Request) -> Response:
        body = await read_patch(request)
        # The If-Match check and the write are one step: concurrent writers holding the
        # same ETag must not both succeed.
        async with self.editing:
            return await self._patch_account(request, body)

    async def _patch_account(self, request: Request, body: dict[str, Any]) -> Response:
        account = self.find(request)
        check_if_match(request, self.account_body(account))
        valid = validate_patch(ManagerAccount, body)
        if set(valid) - {"Password"} and CONFIGURE_USERS not in privileges(principal(request).role):
            raise RedfishErrorReply(403, "InsufficientPrivilege")
        if valid.get("Password", "") is None:
            raise RedfishErrorReply(400, "PropertyValueTypeError", "null", "Password")
        secret = self.password(valid["Password"]) if "Password" in valid else None
        changes: dict[str, Any] = {}
        if "RoleId" in valid:
            changes["role"] = valid["RoleId"]
        if "Enabled" in valid:
            changes["enabled"] = valid["Enabled"]
        if valid.get("Locked") is True:  # only an administrator's unlock is a change
            raise RedfishErrorReply(400, "PropertyValueNotInList", "true", "Locked")
        demoted = changes.get("role", "Administrator") != "Administrator" or not changes.get(
            "enabled", True
        )
        if account.role == "Administrator" and demoted and not self.other_admins(account.username):
            raise RedfishErrorReply(409, "ResourceInUse")
        if secret is not None:
            fresh = await asyncio.to_thread(
                hash_account, account.username, secret, account.role, account.enabled
            )
            account = await self.accounts.update(
                account.username, _salt=fresh._salt, _hash=fresh._hash, _params=fresh._params
            )
        if changes:
            account = await self.accounts.update(account.username, **changes)
        if "Locked" in valid:
            self.accounts.unlock(account.username)
        if secret is not None or changes:
            ended = self.sessions.drop_user(account.username, keep=principal(request).session_id)
            self.log.info(f"account {account.username!r} changed; {ended} session(s) ended")
        return tagged(request, self.account_body(account))

    async def delete_account(self, request: Request) -> Response:
        async with self.editing:
            account = self.find(request)
            check_if_match(request, self.account_body(account))
            if account.role == "Administrator" and not self.other_admins(account.username):
                raise RedfishErrorReply(409, "ResourceCannotBeDeleted")
            await self.accounts.delete(account.username)
            self.sessions.drop_user(account.username)
            self.log.info(f"account {account.username!r} deleted")
            return no_content()

    async def roles(self, request: Request) -> Response:
        members = [f"{ROLES}/{role}" for role in page(request, list(ROLE_PRIVILEGES))]
        return respond(collection("RoleCollection", ROLES, "Roles", members))

    async def one_role(self, request: Request) -> Response:
        role = request.path_params["role_id"]
        if role not in ROLE_PRIVILEGES:
            raise RedfishErrorReply(404, "ResourceNotFound", "Role", role)
        declared = Role(
            Id=role,
            Name=f"{role} role",
            RoleId=role,
            IsPredefined=True,
            AssignedPrivileges=[p for p in ROLE_PRIVILEGES[role] if p not in OEM_PRIVILEGES],
            OemPrivileges=[p for p in ROLE_PRIVILEGES[role] if p in OEM_PRIVILEGES],
        )
        return tagged(request, declared.body(f"{ROLES}/{role}"))


def routes(accounts: Accounts, sessions: SessionStore, log: ContextLogger) -> list[BaseRoute]:
    res = AccountResources(accounts, sessions, log)
    return [
        route(ACCOUNT_SERVICE, GET=res.service, PATCH=res.patch_service),
        route(ACCOUNTS, GET=res.list_accounts, POST=res.create),
        route(
            f"{ACCOUNTS}/{{account_id}}",
            GET=res.get_account,
            PATCH=res.patch_account,
            DELETE=res.delete_account,
        ),
        route(ROLES, GET=res.roles),
        route(f"{ROLES}/{{role_id}}", GET=res.one_role),
    ]
