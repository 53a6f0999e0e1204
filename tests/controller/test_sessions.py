"""The dashboard's login: a token becomes a session cookie; CSRF on every action; roles enforced
by the server whatever the page sends; one merged live stream that resumes after a drop."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta, Rack, RackSpec
from racklet.audit import AuditLog
from racklet.controller import ControllerMetrics
from racklet.controller import _sessions as sessions_module
from racklet.controller._http import create_api_app
from racklet.controller._sessions import COOKIE
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from racklet.store import MemoryStore

ADMIN = "admin-t0ken-for-tests"


@dataclass
class Ui:
    base: str
    verify: ssl.SSLContext
    store: MemoryStore
    audit: AuditLog

    def client(self, **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base, verify=self.verify, headers=headers, timeout=10
        )

    async def token(self, role: str, **extra: object) -> str:
        async with self.client(Authorization=f"Bearer {ADMIN}") as admin:
            made = await admin.post("/api/v1/tokens", json={"role": role, **extra})
            assert made.status_code == 201, made.text
            return str(made.json()["token"])

    async def login(self, token: str) -> tuple[httpx.AsyncClient, str]:
        """A browser-like client holding the session cookie, and its CSRF token."""
        browser = self.client()
        response = await browser.post("/ui/v1/login", json={"token": token})
        assert response.status_code == 200, response.text
        return browser, str(response.json()["csrf"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[Ui]:
    store = MemoryStore()
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=40)))
    for slot in (1, 2):
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=f"unit-{slot}"),
                spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url="https://127.0.0.1:1")),
            )
        )
    audit = AuditLog(tmp_path / "controller" / "audit.log")
    app = create_api_app(
        store, token=ADMIN, metrics=ControllerMetrics(), enqueue=lambda k, n: None,
        rack_name="rack-1", audit=audit,
    )  # fmt: skip
    ca = RackCA.create(tmp_path / "pki")
    key, crt = ca.issue("racklet-controller").write(tmp_path, "server")
    port = _free_port()
    server = AppServer(app, port=port, ssl_context=server_context(crt, key), name="api")
    await server.start()
    try:
        verify = client_context(tmp_path / "pki" / "ca.crt")
        yield Ui(f"https://127.0.0.1:{port}", verify, store, audit)
    finally:
        await server.stop()
        await audit.aclose()
        await store.close()


async def test_a_wrong_token_gets_no_session(ui: Ui) -> None:
    async with ui.client() as browser:
        refused = await browser.post("/ui/v1/login", json={"token": "rkt_nobody.x"})
        assert refused.status_code == 401 and refused.json()["kind"] == "Status"
        assert "set-cookie" not in refused.headers
        empty = await browser.post("/ui/v1/login", content=b"{}")
        assert empty.status_code == 400


async def test_the_cookie_is_httponly_secure_strict_and_names_the_role(ui: Ui) -> None:
    browser = ui.client()
    response = await browser.post("/ui/v1/login", json={"token": await ui.token("viewer")})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert response.json()["role"] == "viewer" and response.json()["csrf"]
    session = (await browser.get("/ui/v1/session")).json()
    assert session["role"] == "viewer" and session["csrf"] == response.json()["csrf"]
    await browser.aclose()


async def test_no_session_no_data(ui: Ui) -> None:
    async with ui.client() as browser:
        for path in ("/ui/v1/snapshot", "/ui/v1/session", "/ui/v1/units", "/api/v1/computeunits"):
            assert (await browser.get(path)).status_code == 401, path
        forged = {"Cookie": f"{COOKIE}=eyJwIjoicmFjay1hZG1pbiJ9.bm90LWEtbWFj"}
        assert (await browser.get("/ui/v1/snapshot", headers=forged)).status_code == 401
        page = await browser.get("/")  # the login page and its files are open
        assert page.status_code == 200 and "login-form" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def _first_data(page: httpx.Response) -> dict[str, object] | None:
    """The session and snapshot the page carries for a logged-in browser (its data block)."""
    start = page.text.find('<script type="application/json" id="racklet-first">')
    if start < 0:
        return None
    body = page.text[page.text.index(">", start) + 1 : page.text.index("</script>", start)]
    return dict(json.loads(body))


async def test_the_page_carries_the_first_data_only_for_a_session(ui: Ui) -> None:
    unit = await ui.store.get(ComputeUnit, "unit-1")
    unit.metadata.annotations["note"] = "</script><script>alert(1)</script>"
    await ui.store.update(unit)
    async with ui.client() as anonymous:
        page = await anonymous.get("/")
        assert page.status_code == 200 and "login-form" in page.text
        assert _first_data(page) is None  # the login page: nothing of the rack
        forged = {"Cookie": f"{COOKIE}=eyJwIjoicmFjay1hZG1pbiJ9.bm90LWEtbWFj"}
        assert _first_data(await anonymous.get("/", headers=forged)) is None
    browser, csrf = await ui.login(await ui.token("viewer"))
    page = await browser.get("/")
    first = _first_data(page)
    assert first is not None, page.text[:500]
    session, snapshot = first["session"], first["snapshot"]
    assert isinstance(session, dict) and session["role"] == "viewer" and session["csrf"] == csrf
    assert isinstance(snapshot, dict)
    units = {u["metadata"]["name"]: u for u in snapshot["items"]["computeunits"]}
    assert units["unit-1"]["metadata"]["annotations"]["note"].startswith("</script>")
    assert "<script>alert" not in page.text  # escaped inside the block: it cannot end it
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (await browser.get("/index.html")).text.count('id="racklet-first"') == 1
    await browser.aclose()


async def test_an_expired_session_is_refused(ui: Ui, monkeypatch: pytest.MonkeyPatch) -> None:
    browser, _ = await ui.login(ADMIN)
    assert (await browser.get("/ui/v1/snapshot")).status_code == 200
    later = time.time() + sessions_module.SESSION_TTL_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    assert (await browser.get("/ui/v1/snapshot")).status_code == 401
    await browser.aclose()


async def test_an_action_without_the_csrf_token_is_403(ui: Ui) -> None:
    browser, csrf = await ui.login(await ui.token("operator"))
    body = {"spec": {"power": "Off"}}
    forged = await browser.patch("/api/v1/computeunits/unit-1", json=body)
    assert forged.status_code == 403 and "CSRF" in forged.json()["message"]
    wrong = await browser.patch(
        "/api/v1/computeunits/unit-1", json=body, headers={"X-Racklet-CSRF": csrf[:-2] + "xx"}
    )
    assert wrong.status_code == 403
    assert (await ui.store.get(ComputeUnit, "unit-1")).spec.power == "On"
    done = await browser.patch(
        "/api/v1/computeunits/unit-1", json=body, headers={"X-Racklet-CSRF": csrf}
    )
    assert done.status_code == 200, done.text
    assert (await ui.store.get(ComputeUnit, "unit-1")).spec.power == "Off"
    for path in ("console", "redfish"):
        gone = await browser.get(f"/ui/v1/units/unit-9/{path}")
        assert gone.status_code == 404 and gone.json()["kind"] == "Status"
    missing = await browser.post(
        "/api/v1/computeunits/unit-9/power-cycle", headers={"X-Racklet-CSRF": csrf}
    )
    assert missing.status_code == 404 and "unit-9" in missing.json()["message"]
    await browser.aclose()


async def test_a_viewer_session_is_refused_actions_whatever_the_page_sends(ui: Ui) -> None:
    browser, csrf = await ui.login(await ui.token("viewer"))
    tampered = await browser.patch(
        "/api/v1/computeunits/unit-1",
        json={"spec": {"power": "Off"}},
        headers={"X-Racklet-CSRF": csrf},
    )
    assert tampered.status_code == 403 and "viewer" in tampered.json()["message"]
    assert (await ui.store.get(ComputeUnit, "unit-1")).spec.power == "On"
    assert (await browser.get("/api/v1/audit")).status_code == 403
    await browser.aclose()


async def test_revoking_the_token_ends_its_sessions(ui: Ui) -> None:
    token = await ui.token("viewer", name="alice")
    browser, _ = await ui.login(token)
    assert (await browser.get("/ui/v1/snapshot")).status_code == 200
    async with ui.client(Authorization=f"Bearer {ADMIN}") as admin:
        assert (await admin.delete("/api/v1/tokens/alice")).status_code == 200
    assert (await browser.get("/ui/v1/snapshot")).status_code == 401
    await browser.aclose()


async def test_logout_ends_the_session(ui: Ui) -> None:
    browser, _ = await ui.login(ADMIN)
    cookie = browser.cookies[COOKIE]
    assert (await browser.post("/ui/v1/logout")).status_code == 200
    async with ui.client(Cookie=f"{COOKIE}={cookie}") as stolen:
        assert (await stolen.get("/ui/v1/snapshot")).status_code == 401
    await browser.aclose()


async def test_a_login_code_works_once_and_only_for_an_admin(ui: Ui) -> None:
    async with ui.client(Authorization=f"Bearer {await ui.token('operator')}") as operator:
        assert (await operator.post("/ui/v1/login-codes")).status_code == 403
    async with ui.client(Authorization=f"Bearer {ADMIN}") as admin:
        made = (await admin.post("/ui/v1/login-codes")).json()
    assert made["path"] == f"/#code={made['code']}"
    browser = ui.client()
    first = await browser.post("/ui/v1/login", json={"code": made["code"]})
    assert first.status_code == 200 and first.json()["role"] == "admin"
    async with ui.client() as other:
        again = await other.post("/ui/v1/login", json={"code": made["code"]})
    assert again.status_code == 401
    await browser.aclose()


async def _events(response: httpx.Response, count: int) -> list[tuple[str, str, dict[str, object]]]:
    """The first ``count`` change events of a server-sent-event stream: (id, event, data)."""
    found: list[tuple[str, str, dict[str, object]]] = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line:
            key, _, value = line.partition(": ")
            fields[key] = value
            continue
        if fields.get("event") == "change":
            found.append((fields.get("id", ""), "change", json.loads(fields["data"])))
            if len(found) == count:
                return found
        fields = {}
    return found


async def test_one_stream_carries_every_kind_and_resumes_after_a_drop(ui: Ui) -> None:
    browser, _ = await ui.login(ADMIN)
    snap = (await browser.get("/ui/v1/snapshot")).json()
    kinds = ["computeunits", "faults", "gitsources", "racks", "releases", "rollouts"]
    assert sorted(snap["items"]) == kinds
    assert [u["metadata"]["name"] for u in snap["items"]["computeunits"]] == ["unit-1", "unit-2"]
    since = snap["resourceVersion"]
    unit = await ui.store.get(ComputeUnit, "unit-1")
    unit.status.phase = "Running"
    await ui.store.update_status(unit)
    rack = await ui.store.get(Rack, "rack-1")
    rack.status.power_watts = 3.5
    await ui.store.update_status(rack)
    async with browser.stream("GET", f"/ui/v1/watch?resourceVersion={since}") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        changes = await asyncio.wait_for(_events(stream, 2), 10)
    kinds = {(c[2]["object"]["kind"], c[2]["type"]) for c in changes}  # type: ignore[index]
    assert kinds == {("ComputeUnit", "MODIFIED"), ("Rack", "MODIFIED")}
    # the browser reconnects with Last-Event-ID: only what came after it
    unit = await ui.store.get(ComputeUnit, "unit-2")
    unit.status.phase = "Off"
    await ui.store.update_status(unit)
    # the browser reconnects with Last-Event-ID: from the first event on, only what is newer
    resume = {"Last-Event-ID": changes[0][0]}
    async with browser.stream("GET", "/ui/v1/watch", headers=resume) as stream:
        again = await asyncio.wait_for(_events(stream, 2), 10)
    names = {c[2]["object"]["metadata"]["name"] for c in again}  # type: ignore[index]
    first = changes[0][2]["object"]["metadata"]["name"]  # type: ignore[index]
    assert names == {"rack-1", "unit-1", "unit-2"} - {first}
    # from the last event on: only the change made after the stream dropped
    async with browser.stream(
        "GET", "/ui/v1/watch", headers={"Last-Event-ID": changes[1][0]}
    ) as stream:
        last = await asyncio.wait_for(_events(stream, 1), 10)
    assert last[0][2]["object"]["metadata"]["name"] == "unit-2"  # type: ignore[index]
    assert (await browser.get("/ui/v1/watch?resourceVersion=x")).status_code == 400
    assert (await browser.get("/ui/v1/watch?resourceVersion=1&kinds=apitokens")).status_code == 400
    await browser.aclose()


async def test_logins_and_session_actions_are_audited_under_the_token_name(ui: Ui) -> None:
    async with ui.client() as stranger:
        await stranger.post("/ui/v1/login", json={"token": "rkt_nobody.x"})
    browser, csrf = await ui.login(await ui.token("operator", name="alice"))
    await browser.post("/api/v1/computeunits/unit-2/power-cycle", headers={"X-Racklet-CSRF": csrf})
    await browser.aclose()
    await ui.audit.aclose()
    lines = [json.loads(x) for x in ui.audit.path.read_text().splitlines()]
    seen = [(r["principal"], r["verb"], r["object"], r["status"]) for r in lines]
    assert (None, "dashboard-login", "dashboard", 401) in seen
    assert ("alice", "dashboard-login", "dashboard", 200) in seen
    assert ("alice", "power-cycle", "computeunits/unit-2", 202) in seen
