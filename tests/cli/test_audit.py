"""The API's audit trail and ``racklet audit``, against a real API over TLS.

Every state-changing request leaves one structured line (principal, source, verb, object,
outcome, request id), refused ones too; ``racklet audit`` filters by time and principal.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import LiveApi
from tests.cli.test_resources import one_line_error
from tests.cli.test_tokens import make_token, raw


def lines(live: LiveApi) -> list[dict[str, Any]]:
    assert live.audit is not None
    live.audit.flush()
    path = live.audit.path
    return [json.loads(line) for line in path.read_text().splitlines()]


def admin_token(live: LiveApi) -> str:
    from racklet.config import load

    return load(live.config_path).api.token


def test_a_write_through_the_api_leaves_one_structured_line(live: LiveApi) -> None:
    answer = raw(
        live,
        admin_token(live),
        "PATCH",
        "/api/v1/computeunits/unit-2",
        json={"spec": {"power": "Off"}},
    )
    assert answer.status_code == 200
    assert raw(live, admin_token(live), "GET", "/api/v1/computeunits").status_code == 200
    [line] = lines(live)  # the GET is not audited
    assert line["component"] == "api"
    assert line["principal"] == "rack-admin" and line["role"] == "admin"
    assert line["source"].startswith("127.0.0.1:")
    assert (line["verb"], line["object"]) == ("patch", "computeunits/unit-2")
    assert (line["outcome"], line["status"]) == ("succeeded", 200)
    assert line["requestId"] == answer.headers["x-request-id"]
    assert dt.datetime.fromisoformat(line["time"]) <= dt.datetime.now(dt.UTC)
    assert os.stat(live.audit.path).st_mode & 0o777 == 0o600  # type: ignore[union-attr]


def test_refused_and_failed_writes_are_recorded(live: LiveApi) -> None:
    viewer = make_token(live, "--role", "viewer", "--name", "alice")
    raw(live, viewer, "POST", "/api/v1/computeunits/unit-1/power-cycle")
    raw(live, "wrong", "DELETE", "/api/v1/computeunits/unit-1")
    raw(
        live, admin_token(live), "PATCH", "/api/v1/computeunits/unit-1", json={"spec": {"power": 7}}
    )
    made, refused, anonymous, failed = lines(live)
    assert (made["verb"], made["object"], made["outcome"]) == ("create", "tokens", "succeeded")
    assert viewer.split(".", 1)[1] not in json.dumps(made)  # the secret is never logged
    assert refused["principal"] == "alice" and refused["role"] == "viewer"
    assert (refused["verb"], refused["object"]) == ("power-cycle", "computeunits/unit-1")
    assert (refused["outcome"], refused["status"]) == ("refused", 403)
    assert "viewer" in refused["message"]
    assert anonymous["principal"] is None
    assert (anonymous["verb"], anonymous["outcome"], anonymous["status"]) == (
        "delete",
        "refused",
        401,
    )
    assert (failed["outcome"], failed["status"]) == ("failed", 422)
    assert "spec.power" in failed["message"]
    assert len({made["requestId"], refused["requestId"], anonymous["requestId"]}) == 3


def test_a_well_formed_request_id_is_kept(live: LiveApi) -> None:
    for given in ("cli-42.run:7", "bad id with spaces"):
        answer = raw(
            live, admin_token(live), "POST", "/api/v1/computeunits/unit-3/power-cycle",
            headers={"X-Request-Id": given},
        )  # fmt: skip
        assert answer.status_code == 202
    kept, replaced = lines(live)
    assert kept["requestId"] == "cli-42.run:7"
    assert replaced["requestId"] != "bad id with spaces" and len(replaced["requestId"]) == 32


def test_racklet_audit_filters_by_principal_and_time(live: LiveApi) -> None:
    operator = make_token(live, "--role", "operator", "--units", "unit-1", "--name", "bob")
    raw(live, operator, "PATCH", "/api/v1/computeunits/unit-1", json={"spec": {"power": "Off"}})
    raw(live, operator, "PATCH", "/api/v1/computeunits/unit-2", json={"spec": {"power": "Off"}})
    lines(live)  # flushed
    everything = live.cli("audit")
    assert everything.code == 0, everything
    header, *rows = everything.out.splitlines()
    assert header.split()[:7] == [
        "TIME", "COMPONENT", "PRINCIPAL", "SOURCE", "VERB", "OBJECT", "OUTCOME"
    ]  # fmt: skip
    assert len(rows) == 3
    bobs = live.cli("audit", "--principal", "bob")
    assert [r.split()[5:7] for r in bobs.out.splitlines()[1:]] == [
        ["computeunits/unit-1", "succeeded"],
        ["computeunits/unit-2", "refused"],
    ]
    as_json = json.loads(live.cli("audit", "--principal", "bob", "-o", "json").out)
    assert [r["outcome"] for r in as_json] == ["succeeded", "refused"]
    assert len(json.loads(live.cli("audit", "--since", "1h", "-o", "json").out)) == 3
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    assert live.cli("audit", "--since", later).out.strip() == "no audit records match"
    assert json.loads(live.cli("audit", "--component", "api", "-o", "json").out) == json.loads(
        live.cli("audit", "-o", "json").out
    )
    assert json.loads(live.cli("audit", "--component", "bmc", "-o", "json").out) == []


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("--since", "yesterday"), 2, "--since"),
        (("--since",), 2, "--since"),
        (("--component", " "), 2, "--component"),
        (("-o", "xml"), 2, "--output"),
    ],
)
def test_bad_audit_arguments_are_one_line_errors(
    live: LiveApi, args: tuple[str, ...], code: int, needle: str
) -> None:
    one_line_error(live.cli("audit", *args), code, needle)


def test_a_damaged_audit_file_is_one_line(live: LiveApi, tmp_path: Path) -> None:
    damaged = tmp_path / "bmc" / "unit-1" / "audit.log"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"time": "2026-01-01T00:00:00Z"}\nnot json\n')
    one_line_error(live.cli("audit"), 1, "audit.log:2")


def test_a_factory_reset_keeps_the_audit_logs_and_wipes_the_secrets(tmp_path: Path) -> None:
    from racklet.cli._prepare import wipe_for_factory_reset
    from racklet.config import StateLayout

    kept = {
        "bmc/unit-1/audit.log": '{"time":"2026-01-01T00:00:02Z","n":1}\n',
        "bmc/unit-1/audit.log.1": '{"time":"2026-01-01T00:00:01Z","n":0}\n',
        "rmc/audit.log": '{"time":"2026-01-01T00:00:03Z","n":2}\n',
        "controller/audit.log": '{"time":"2026-01-01T00:00:04Z","n":3}\n',
    }
    wiped = ["bmc/unit-1/accounts.json", "rmc/admin.password", "pki/ca.key", "units/unit-1/x"]
    for name, text in kept.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o600)
    for name in wiped:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("secret")
    wipe_for_factory_reset(StateLayout(tmp_path))
    for name, text in kept.items():
        assert (tmp_path / name).read_text() == text
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    for name in wiped:
        assert not (tmp_path / name).exists()
    assert not (tmp_path / ".audit-kept").exists()


def test_the_api_serves_the_audit_log_to_admins_only(live: LiveApi) -> None:
    """What the dashboard reads: ``GET /api/v1/audit`` with the same filters as the CLI."""
    viewer = make_token(live, "--role", "viewer", "--name", "alice")
    raw(live, viewer, "DELETE", "/api/v1/computeunits/unit-3")
    raw(live, admin_token(live), "PATCH", "/api/v1/computeunits/unit-3", json={"spec": {}})
    lines(live)  # flushed
    bmc = live.config_path.parent / "bmc" / "unit-1" / "audit.log"
    bmc.parent.mkdir(parents=True)
    bmc.write_text('{"time":"2026-01-01T00:00:00Z","component":"bmc/unit-1","principal":"admin"}\n'
                   "a damaged line\n")  # fmt: skip
    answer = raw(live, admin_token(live), "GET", "/api/v1/audit")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["kind"] == "AuditRecordList"
    assert [(r["component"], r["principal"]) for r in body["items"]] == [
        ("bmc/unit-1", "admin"),  # oldest first; the damaged line is skipped
        ("api", "rack-admin"),
        ("api", "alice"),
        ("api", "rack-admin"),
    ]
    alice = raw(live, admin_token(live), "GET", "/api/v1/audit", params={"principal": "alice"})
    assert [r["verb"] for r in alice.json()["items"]] == ["delete"]
    recent = raw(
        live, admin_token(live), "GET", "/api/v1/audit", params={"since": "1h", "limit": "1"}
    )
    assert [r["object"] for r in recent.json()["items"]] == ["computeunits/unit-3"]
    bad = raw(live, admin_token(live), "GET", "/api/v1/audit", params={"since": "soon"})
    assert bad.status_code == 400 and "since" in bad.json()["message"]
    refused = raw(live, viewer, "GET", "/api/v1/audit")
    assert refused.status_code == 403 and "audit log" in refused.json()["message"]
