"""``AccountService``: accounts (create, change, delete), the predefined Roles (the DMTF
three and ``RackController``, for the controller's certificate), the lockout and password
policy.

Account ids are user names, as in OpenBMC. Changing an account's password, role or
enabled state, or deleting it, ends that account's sessions: a session never outlives the
rights it was opened with. The last enabled Administrator cannot be removed or demoted, so
a BMC can always be managed.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._accounts import ROLES, Account, Accounts, hash_account
from racklet.bmc._http import (
    check_if_match,
    no_content,
    page,
    principal,
    read_object,
    read_patch,
    respond,
    route,
    tagged,
)
from racklet.bmc._message_registry import RedfishErrorReply
from racklet.bmc._privileges import (
    CONFIGURE_USERS,
    OEM_PRIVILEGES,
    ROLE_PRIVILEGES,
    privileges,
)
from racklet.bmc._schema import ROOT, collection, link, resource
from racklet.bmc._sessions import SessionStore
from racklet.log import ContextLogger

SERVICE = f"{ROOT}/AccountService"
ACCOUNTS = f"{SERVICE}/Accounts"
ROLES_PATH = f"{SERVICE}/Roles"
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
# AccountService properties an Administrator may PATCH -> (attribute, lowest, highest)
_POLICY = {
    "AccountLockoutThreshold": ("threshold", 0, 100),
    "AccountLockoutDuration": ("duration", 1, 86400),
    "AccountLockoutCounterResetAfter": ("reset_after", 1, 86400),
}


def _int(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(value), name)
    if not low <= value <= high:
        raise RedfishErrorReply(400, "PropertyValueOutOfRange", value, name)
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(value), name)
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(value), name)
    return value


def _role(value: Any) -> str:
    role = _str(value, "RoleId")
    if role not in ROLES:
        raise RedfishErrorReply(
            400, "PropertyValueNotInList", role, "RoleId", resolution=f"Use one of: {ROLES}."
        )
    return role


def routes(accounts: Accounts, sessions: SessionStore, log: ContextLogger) -> list[Route]:
    editing = asyncio.Lock()

    def account_body(account: Account) -> dict[str, Any]:
        return resource(
            "ManagerAccount",
            f"{ACCOUNTS}/{account.username}",
            Id=account.username,
            Name="User Account",
            UserName=account.username,
            RoleId=account.role,
            Enabled=account.enabled,
            Locked=accounts.locked(account.username),
            Password=None,
            AccountTypes=["Redfish"],
            Links={"Role": link(f"{ROLES_PATH}/{account.role}")},
        )

    def service_body() -> dict[str, Any]:
        policy = accounts.lockout
        return resource(
            "AccountService",
            SERVICE,
            Id="AccountService",
            Name="Account Service",
            ServiceEnabled=True,
            LocalAccountAuth="Enabled",
            SupportedAccountTypes=["Redfish"],
            MinPasswordLength=accounts.passwords.min_length,
            MaxPasswordLength=accounts.passwords.max_length,
            AccountLockoutThreshold=policy.threshold,
            AccountLockoutDuration=policy.duration,
            AccountLockoutCounterResetAfter=policy.reset_after,
            AccountLockoutCounterResetEnabled=True,
            Status={"State": "Enabled", "Health": "OK"},
            Accounts=link(ACCOUNTS),
            Roles=link(ROLES_PATH),
        )

    def find(request: Request) -> Account:
        name = request.path_params["account_id"]
        account = accounts.get(name)
        caller = principal(request)
        if account is None or (
            CONFIGURE_USERS not in privileges(caller.role) and name != caller.username
        ):
            raise RedfishErrorReply(404, "ResourceNotFound", "ManagerAccount", name)
        return account

    def password(value: Any) -> str:
        text = _str(value, "Password")
        problem = accounts.passwords.problem(text)
        if problem:
            raise RedfishErrorReply(
                400, "PropertyValueFormatError", "******", "Password", resolution=problem
            )
        return text

    def other_admins(username: str) -> bool:
        return any(
            a.role == "Administrator" and a.enabled and a.username != username
            for a in accounts.all()
        )

    async def service(request: Request) -> Response:
        return tagged(request, service_body())

    async def patch_service(request: Request) -> Response:
        body = await read_patch(request)
        check_if_match(request, service_body())
        current = service_body()
        changes = {}
        for name, value in body.items():
            if name not in _POLICY:
                key = "PropertyNotWritable" if name in current else "PropertyUnknown"
                raise RedfishErrorReply(400, key, name)
            attribute, low, high = _POLICY[name]
            changes[attribute] = _int(value, name, low, high)
        for attribute, value in changes.items():
            setattr(accounts.lockout, attribute, value)
        return tagged(request, service_body())

    async def list_accounts(request: Request) -> Response:
        caller = principal(request)
        visible = [
            a
            for a in accounts.all()
            if CONFIGURE_USERS in privileges(caller.role) or a.username == caller.username
        ]
        members = [f"{ACCOUNTS}/{a.username}" for a in page(request, visible)]
        return respond(collection("ManagerAccountCollection", ACCOUNTS, "Accounts", members))

    async def create(request: Request) -> Response:
        body = await read_object(request)
        for name in body:
            if name not in ("UserName", "Password", "RoleId", "Enabled"):
                raise RedfishErrorReply(400, "PropertyUnknown", name)
        for name in ("UserName", "Password", "RoleId"):
            if name not in body:
                raise RedfishErrorReply(400, "CreateFailedMissingReqProperties", name)
        username = _str(body["UserName"], "UserName")
        if not USERNAME.fullmatch(username):
            raise RedfishErrorReply(
                400,
                "PropertyValueFormatError",
                username,
                "UserName",
                resolution="Use 1 to 32 letters, digits, '.', '_' or '-'.",
            )
        secret, role = password(body["Password"]), _role(body["RoleId"])
        enabled = _bool(body.get("Enabled", True), "Enabled")
        if accounts.get(username) is not None:
            raise RedfishErrorReply(
                409, "ResourceAlreadyExists", "ManagerAccount", "UserName", username
            )
        account = await asyncio.to_thread(hash_account, username, secret, role, enabled)
        await accounts.put(account)
        log.info(f"account {username!r} created ({role})")
        location = f"{ACCOUNTS}/{username}"
        return respond(account_body(account), 201, {"Location": location})

    async def get_account(request: Request) -> Response:
        return tagged(request, account_body(find(request)))

    async def patch_account(request: Request) -> Response:
        body = await read_patch(request)
        # The If-Match check and the write are one step: concurrent writers holding the
        # same ETag must not both succeed.
        async with editing:
            return await _patch_account(request, body)

    async def _patch_account(request: Request, body: dict[str, Any]) -> Response:
        account = find(request)
        check_if_match(request, account_body(account))
        manages_users = CONFIGURE_USERS in privileges(principal(request).role)
        current = account_body(account)
        for name in body:
            if name not in ("Password", "RoleId", "Enabled", "Locked"):
                key = "PropertyNotWritable" if name in current else "PropertyUnknown"
                raise RedfishErrorReply(400, key, name)
            if name != "Password" and not manages_users:
                raise RedfishErrorReply(403, "InsufficientPrivilege")
        changes: dict[str, Any] = {}
        secret = password(body["Password"]) if "Password" in body else None
        if "RoleId" in body:
            changes["role"] = _role(body["RoleId"])
        if "Enabled" in body:
            changes["enabled"] = _bool(body["Enabled"], "Enabled")
        if "Locked" in body and _bool(body["Locked"], "Locked"):
            raise RedfishErrorReply(400, "PropertyValueNotInList", "true", "Locked")
        demoted = changes.get("role", "Administrator") != "Administrator" or not changes.get(
            "enabled", True
        )
        if account.role == "Administrator" and demoted and not other_admins(account.username):
            raise RedfishErrorReply(409, "ResourceInUse")
        if secret is not None:
            fresh = await asyncio.to_thread(
                hash_account, account.username, secret, account.role, account.enabled
            )
            account = await accounts.update(
                account.username, _salt=fresh._salt, _hash=fresh._hash, _params=fresh._params
            )
        if changes:
            account = await accounts.update(account.username, **changes)
        if "Locked" in body:
            accounts.unlock(account.username)
        if secret is not None or changes:
            ended = sessions.drop_user(account.username, keep=principal(request).session_id)
            log.info(f"account {account.username!r} changed; {ended} session(s) ended")
        return tagged(request, account_body(account))

    async def delete_account(request: Request) -> Response:
        async with editing:
            return await _delete_account(request)

    async def _delete_account(request: Request) -> Response:
        account = find(request)
        check_if_match(request, account_body(account))
        if account.role == "Administrator" and not other_admins(account.username):
            raise RedfishErrorReply(409, "ResourceCannotBeDeleted")
        await accounts.delete(account.username)
        sessions.drop_user(account.username)
        log.info(f"account {account.username!r} deleted")
        return no_content()

    def role_body(role: str) -> dict[str, Any]:
        return resource(
            "Role",
            f"{ROLES_PATH}/{role}",
            Id=role,
            Name=f"{role} role",
            RoleId=role,
            IsPredefined=True,
            AssignedPrivileges=[p for p in ROLE_PRIVILEGES[role] if p not in OEM_PRIVILEGES],
            OemPrivileges=[p for p in ROLE_PRIVILEGES[role] if p in OEM_PRIVILEGES],
        )

    async def roles(request: Request) -> Response:
        members = [f"{ROLES_PATH}/{role}" for role in page(request, list(ROLE_PRIVILEGES))]
        return respond(collection("RoleCollection", ROLES_PATH, "Roles", members))

    async def one_role(request: Request) -> Response:
        role = request.path_params["role_id"]
        if role not in ROLE_PRIVILEGES:
            raise RedfishErrorReply(404, "ResourceNotFound", "Role", role)
        return tagged(request, role_body(role))

    return [
        route(SERVICE, GET=service, PATCH=patch_service),
        route(ACCOUNTS, GET=list_accounts, POST=create),
        route(
            f"{ACCOUNTS}/{{account_id}}",
            GET=get_account,
            PATCH=patch_account,
            DELETE=delete_account,
        ),
        route(ROLES_PATH, GET=roles),
        route(f"{ROLES_PATH}/{{role_id}}", GET=one_role),
    ]
