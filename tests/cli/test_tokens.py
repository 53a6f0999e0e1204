"""API tokens with roles, through ``racklet token`` and ``RACKLET_TOKEN``, against a real API.

The acceptance test of issue 9 item 9: a viewer token can ``get`` but ``power off`` is 403
with a Status body; an operator token scoped to unit-1 cannot act on unit-2.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import httpx
import pytest

from racklet.api import ApiToken, ComputeUnit
from racklet.cli._client import TOKEN_ENV
from racklet.config import load
from racklet.controller._tokens import TokenKey
from racklet.net import client_context
from tests.cli.conftest import TOKEN, LiveApi, Result
from tests.cli.test_resources import one_line_error


def make_token(live: LiveApi, *args: str) -> str:
    result = live.cli("token", "create", *args)
    assert result.code == 0, result
    token = result.out.strip()  # alone on stdout: TOKEN=$(racklet token create ...)
    assert token.startswith("rkt_") and "\n" not in token
    assert "created" in result.err and token not in result.err
    return token


def as_token(live: LiveApi, monkeypatch: pytest.MonkeyPatch, token: str, *args: str) -> Result:
    with monkeypatch.context() as patch:
        patch.setenv(TOKEN_ENV, token)
        return live.cli(*args)


def raw(live: LiveApi, token: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    config = load(live.config_path)
    with httpx.Client(
        base_url=config.api.url,
        verify=client_context(config.api.ca_bundle),
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        return http.request(method, path, **kwargs)  # type: ignore[arg-type]


def power(live: LiveApi, name: str) -> str:
    return live.run(live.store.get(ComputeUnit, name)).spec.power


def test_a_viewer_can_get_but_not_power_off(live: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    viewer = make_token(live, "--role", "viewer", "--name", "alice")
    listed = as_token(live, monkeypatch, viewer, "get", "units")
    assert listed.code == 0, listed
    assert [r.split()[0] for r in listed.out.splitlines()[1:]] == ["unit-1", "unit-2", "unit-3"]
    before = power(live, "unit-1")
    refused = as_token(live, monkeypatch, viewer, "power", "off", "unit-1")
    one_line_error(refused, 1, "viewer")
    assert power(live, "unit-1") == before
    answer = raw(
        live, viewer, "PATCH", "/api/v1/computeunits/unit-1", json={"spec": {"power": "Off"}}
    )
    assert answer.status_code == 403
    body = answer.json()
    assert body["kind"] == "Status" and body["reason"] == "Forbidden" and body["code"] == 403
    assert "alice" in body["message"]


def test_an_operator_acts_on_its_units_only(live: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = make_token(live, "--role", "operator", "--units", "unit-1", "--name", "bob")
    done = as_token(live, monkeypatch, operator, "power", "off", "unit-1")
    assert done.code == 0, done
    assert power(live, "unit-1") == "Off"
    for args in (("power", "off", "unit-2"), ("power", "cycle", "unit-2")):
        refused = as_token(live, monkeypatch, operator, *args)
        one_line_error(refused, 1, "unit-1 only", "unit-2")
    assert power(live, "unit-2") == "On"
    assert as_token(live, monkeypatch, operator, "power", "cycle", "unit-1").code == 0
    # Not an operator's business: the rack, releases, status, creating units, tokens.
    for method, path, body in [
        ("PATCH", "/api/v1/racks/rack-1", {"spec": {"psuRatedWatts": 10}}),
        ("PATCH", "/api/v1/computeunits/unit-1/status", {"status": {"phase": "Running"}}),
        ("DELETE", "/api/v1/computeunits/unit-1", None),
        ("POST", "/api/v1/tokens", {"role": "admin"}),
        ("GET", "/api/v1/tokens", None),
    ]:
        answer = raw(live, operator, method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["kind"] == "Status"


def test_tokens_are_stored_hashed_and_listed_without_secrets(live: LiveApi) -> None:
    token = make_token(live, "--role", "operator", "--units", "unit-2,unit-3", "--ttl", "8h")
    name, secret = token.removeprefix("rkt_").split(".", 1)
    stored = live.run(live.store.get(ApiToken, name))
    # An HMAC keyed by the admin token: the secret alone does not give the stored value.
    assert stored.spec.secret_hmac == TokenKey(TOKEN).digest(secret)
    assert stored.spec.secret_hmac != hashlib.sha256(secret.encode()).hexdigest()
    assert stored.spec.secret_hmac != hmac.new(b"", secret.encode(), "sha256").hexdigest()
    assert secret not in stored.model_dump_json()
    expires = stored.spec.expires_at
    assert expires is not None
    assert dt.timedelta(hours=7.9) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=8)
    listing = live.cli("token", "list")
    assert listing.code == 0, listing
    row = next(r for r in listing.out.splitlines() if r.startswith(name))
    assert row.split()[1:3] == ["operator", "unit-2,unit-3"]
    as_json = json.loads(live.cli("token", "list", "-o", "json").out)
    assert "secretHmac" not in as_json[0]["spec"] and as_json[0]["status"]["state"] == "active"
    assert secret not in listing.out + json.dumps(as_json)


def test_a_revoked_or_expired_token_stops_working_at_once(live: LiveApi) -> None:
    token = make_token(live, "--role", "viewer", "--name", "carol")
    assert raw(live, token, "GET", "/api/v1/computeunits").status_code == 200
    revoked = live.cli("token", "revoke", "carol")
    assert revoked.code == 0 and "revoked" in revoked.out
    refused = raw(live, token, "GET", "/api/v1/computeunits")
    assert refused.status_code == 401 and refused.json()["kind"] == "Status"
    assert "revoked" in refused.json()["message"]
    # Expired: the same record, with its expiry passed.
    token = make_token(live, "--role", "admin", "--name", "dave")
    stored = live.run(live.store.get(ApiToken, "dave"))
    stored.spec.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    live.run(live.store.update(stored))
    assert raw(live, token, "GET", "/api/v1/computeunits").status_code == 401
    # A token whose secret is wrong, or that names no token, is refused the same way.
    name = "dave"
    for forged in (f"rkt_{name}.{'A' * 43}", f"rkt_nobody.{'A' * 43}", "rkt_"):
        assert raw(live, forged, "GET", "/api/v1/computeunits").status_code == 401


def test_only_an_admin_manages_tokens(live: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = make_token(live, "--role", "admin", "--name", "teacher")
    viewer = make_token(live, "--role", "viewer")
    one_line_error(as_token(live, monkeypatch, viewer, "token", "list"), 1, "only an admin")
    one_line_error(
        as_token(live, monkeypatch, viewer, "token", "create", "--role", "admin"), 1, "admin"
    )
    made = as_token(
        live, monkeypatch, admin, "token", "create", "--role", "viewer", "--name", "eve"
    )
    assert made.code == 0, made
    assert as_token(live, monkeypatch, admin, "token", "revoke", "eve").code == 0


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("--role", "root"), 2, "--role"),
        (("--role", "viewer", "--units", "unit-1"), 2, "only for --role operator"),
        (("--role", "operator", "--units", "unit-9"), 1, "no computeunit 'unit-9'"),
        (("--role", "operator", "--units", "unit-1,,unit-2"), 2, "--units"),
        (("--role", "viewer", "--ttl", "0s"), 2, "--ttl"),
        (("--role", "viewer", "--ttl", "soon"), 2, "--ttl"),
        (("--role", "viewer", "--ttl", "400d"), 2, "366d"),
        (("--role", "viewer", "--name", "Bad_Name"), 1, "name"),
        (("--role", "viewer", "--name", "rack-admin"), 1, "rack-admin"),
        ((), 2, "--role"),
    ],
)
def test_bad_token_arguments_are_one_line_errors(
    live: LiveApi, args: tuple[str, ...], code: int, needle: str
) -> None:
    one_line_error(live.cli("token", "create", *args), code, needle)


def test_revoking_an_unknown_token_is_one_line(live: LiveApi) -> None:
    one_line_error(live.cli("token", "revoke", "nobody"), 1, "nobody")
