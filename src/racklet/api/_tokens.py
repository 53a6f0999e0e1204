"""ApiToken: a bearer token of the controller's API, with a role, as the store keeps it.

Only an HMAC-SHA256 of the token's secret is stored (the token is 256 random bits, so a fast
hash is enough: nothing to brute-force), keyed by the rack's admin token: a factory reset,
which makes a new admin token, voids every ApiToken, and a copy of the store alone cannot
check a guess. The secret itself is shown once, when the token is
made. ApiTokens live in the store so every controller of an HA rack sees the same ones (a
revoked token, deleted from the store, stops working on all of them at once); they are not
served by the generic resource API and GitOps does not apply them: ``racklet token`` (the
``/api/v1/tokens`` endpoints, admin only) manages them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from racklet.api._meta import API_VERSION, DnsLabel, Model, Object

TokenRole = Literal["viewer", "operator", "admin"]
TOKEN_ROLES: tuple[TokenRole, ...] = ("viewer", "operator", "admin")
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class ApiTokenSpec(Model):
    role: TokenRole
    units: list[DnsLabel] = Field(default_factory=list)
    """An operator's units (empty: every unit); ignored for the other roles."""
    expires_at: dt.datetime | None = None
    """None: never expires."""
    secret_hmac: Sha256Hex
    """HMAC-SHA256 of the secret, keyed by the rack's admin token."""
    key_id: Annotated[str, Field(max_length=64)] = ""
    """Which key made ``secret_hmac`` (a hash of it): a token of an older key is void."""
    description: Annotated[str, Field(max_length=200)] = ""


class ApiTokenStatus(Model):
    pass


class ApiToken(Object):
    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["ApiToken"] = "ApiToken"
    spec: ApiTokenSpec
    status: ApiTokenStatus = Field(default_factory=ApiTokenStatus)
