"""The dashboard in real headless Chromium against a real ``racklet up`` rack (issue 13).

What a user sees and does: log in with a token, the rack's units live, power actions with a
confirmation, the role deciding what is offered (and the server refusing it anyway), no
session no data, survival of a controller restart, and no serious accessibility violation.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import RunningRack, phase
from tests.e2e.test_supervise import _children
from tests.web.conftest import AXE, LIVE_TIMEOUT_MS, PHONE, VIEWPORT


def _wait_unit(rack: RunningRack, name: str, want: str) -> None:
    rack.wait_for(lambda units: phase(units, name) == want, f"{name} {want}", timeout=120)


def test_the_login_url_racklet_up_printed_logs_in_once(
    dashboard: Any, web_rack: RunningRack
) -> None:
    assert web_rack.process.stdout is not None
    lines = [web_rack.process.stdout.readline() for _ in range(2)]  # printed with "is up"
    login = next(line for line in lines if "log in (one use" in line)
    url = login.split(": ", 1)[1].strip()
    assert "#code=" in url and str(web_rack.config["api"]["token"]) not in url
    first = dashboard().page
    first.goto(url)
    first.wait_for_selector("#tile-unit-1", timeout=LIVE_TIMEOUT_MS)
    assert "rack-admin (admin)" in first.text_content("#who")
    assert "code=" not in first.url  # the code leaves the address bar (and the history)
    again = dashboard().page
    again.goto(url)
    again.wait_for_selector("#login-token")
    assert "not valid" in again.text_content("#login-error")


def test_login_refuses_a_wrong_token_and_the_role_decides_the_actions(
    dashboard: Any, tokens: dict[str, str], screenshots: Path
) -> None:
    wrong = dashboard()
    page = wrong.open()
    page.fill("#login-token", "rkt_nobody.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    page.click("#login-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#login-error').textContent.length > 0")
    assert "not valid" in page.text_content("#login-error")
    assert page.is_hidden("#nav") and page.query_selector("#tile-unit-1") is None

    viewer = dashboard().login(tokens["viewer"])
    assert [viewer.text_content(f"#tile-unit-{i} a") for i in (1, 2, 3)] == [
        "unit-1", "unit-2", "unit-3",
    ]  # fmt: skip
    assert viewer.query_selector_all("#view button") == []
    viewer.goto(viewer.url.split("#")[0] + "#/unit/unit-1")
    viewer.wait_for_selector("#unit-title")
    assert viewer.query_selector("#unit-power-off") is None

    operator = dashboard().login(tokens["operator"])
    assert operator.is_visible("#power-unit-1") and operator.is_visible("#power-unit-3")
    operator.screenshot(path=str(screenshots / "dashboard-rack.png"), full_page=True)


def test_a_cli_power_change_reaches_the_tile_and_the_chart_without_reload(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str], screenshots: Path
) -> None:
    page = dashboard().login(tokens["viewer"])
    page.evaluate("window.__sameDocument = true")
    assert page.get_attribute("#tile-unit-2", "data-phase") == "Running"
    page.goto(page.url.split("#")[0] + "#/unit/unit-2")
    page.wait_for_selector("#chart-power[data-last]")
    page.wait_for_selector(
        "#redfish dt:text-is('PowerState')"
    )  # read from the BMC, via the controller
    assert "On" in page.text_content("#redfish")
    assert float(page.get_attribute("#chart-power", "data-last")) > 0.5
    try:
        web_rack.cli("power", "off", "unit-2")
        page.wait_for_function(
            "() => document.querySelector('#unit-phase').textContent === 'Off'",
            timeout=LIVE_TIMEOUT_MS,
        )
        page.wait_for_function(
            "() => Number(document.querySelector('#chart-power').dataset.last) < 0.05",
            timeout=LIVE_TIMEOUT_MS,
        )
        page.screenshot(path=str(screenshots / "dashboard-unit.png"), full_page=True)
        page.goto(page.url.split("#")[0] + "#/rack")
        page.wait_for_selector("#tile-unit-2[data-phase=Off]")
        assert page.text_content("#tile-unit-2 [data-role=phase]") == "Off"
        assert page.evaluate("window.__sameDocument") is True  # no reload happened
    finally:
        web_rack.cli("power", "on", "unit-2")
        _wait_unit(web_rack, "unit-2", "Running")


def test_a_units_charts_start_with_the_hour_before_the_page_opened(
    dashboard: Any, tokens: dict[str, str]
) -> None:
    page = dashboard().login(tokens["viewer"])
    # the controller samples unit-1 every 5 s from the rack's start; when this test runs
    # first, the rack is young: wait until the controller's history reaches 12 s back
    oldest = """fetch('/ui/v1/history?units=unit-1').then((r) => r.json())
                  .then((h) => (h.units['unit-1'] || [[Infinity]])[0][0])"""
    deadline = time.monotonic() + LIVE_TIMEOUT_MS / 1000
    while page.evaluate(oldest) > time.time() - 12:
        assert time.monotonic() < deadline, "the controller's history never reached 12 s back"
        time.sleep(1)
    opened = page.evaluate("Date.now() / 1000")
    page.goto(page.url.split("#")[0] + "#/unit/unit-1")
    # the chart's oldest point is from before this page existed (its own samples start at
    # `opened`)
    page.wait_for_function(
        """([opened]) => {
             const first = document.querySelector('#chart-power')?.dataset.first;
             return Boolean(first) && Number(first) < opened - 10;
           }""",
        arg=[opened],
        timeout=LIVE_TIMEOUT_MS,
    )


def test_a_power_action_from_the_page_asks_first_and_takes_effect(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str]
) -> None:
    page = dashboard().login(tokens["operator"])
    page.click("#power-unit-3")
    assert page.is_visible("#confirm") and "power off unit-3" in page.text_content("#confirm-text")
    page.click("#confirm-cancel")
    time.sleep(1)
    assert web_rack.units()["unit-3"]["spec"]["power"] == "On"  # cancelled: nothing sent
    try:
        page.click("#power-unit-3")
        page.click("#confirm-ok")
        web_rack.wait_for(lambda u: u["unit-3"]["spec"]["power"] == "Off", "spec.power Off")
        _wait_unit(web_rack, "unit-3", "Off")
        page.wait_for_selector("#tile-unit-3[data-phase=Off]", timeout=LIVE_TIMEOUT_MS)
    finally:
        web_rack.cli("power", "on", "unit-3")
        _wait_unit(web_rack, "unit-3", "Running")


def test_bad_input_no_session_no_csrf_viewer_tampering_missing_unit(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str]
) -> None:
    anonymous = dashboard().open("#/unit/unit-1")
    anonymous.wait_for_selector("#login-token")
    status = anonymous.evaluate("fetch('/ui/v1/snapshot').then(r => r.status)")
    assert status == 401

    operator = dashboard().login(tokens["operator"])
    forged = operator.evaluate(
        """fetch('/api/v1/computeunits/unit-1', {method: 'PATCH',
             headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({spec: {power: 'Off'}})}).then(r => r.status)"""
    )
    assert forged == 403

    viewer = dashboard().login(tokens["viewer"])
    tampered = viewer.evaluate(
        """fetch('/ui/v1/session').then(r => r.json()).then(s =>
             fetch('/api/v1/computeunits/unit-1', {method: 'PATCH',
               headers: {'Content-Type': 'application/json', 'X-Racklet-CSRF': s.csrf},
               body: JSON.stringify({spec: {power: 'Off'}})})).then(r => r.status)"""
    )
    assert tampered == 403
    assert web_rack.units()["unit-1"]["spec"]["power"] == "On"

    operator.goto(operator.url.split("#")[0] + "#/unit/unit-9")
    operator.wait_for_selector("text=There is no unit unit-9 in this rack.")


def test_every_page_passes_axe_at_desktop_and_phone_size(
    dashboard: Any, tokens: dict[str, str], screenshots: Path
) -> None:
    for viewport in (VIEWPORT, PHONE):
        board = dashboard(viewport)
        login = board.open()
        login.wait_for_selector("#login-token")
        _assert_accessible(login, "login")
        page = board.login(tokens["admin"])
        for view in ("rack", "unit/unit-1", "rollouts", "energy", "audit"):
            page.goto(page.url.split("#")[0] + f"#/{view}")
            page.wait_for_timeout(1000)
            _assert_accessible(page, f"{view} at {viewport['width']}px")
            if viewport is VIEWPORT and view in ("rollouts", "energy"):
                page.screenshot(path=str(screenshots / f"dashboard-{view}.png"), full_page=True)
        if viewport is PHONE:
            page.goto(page.url.split("#")[0] + "#/rack")
            page.wait_for_selector("#tile-unit-1")
            page.screenshot(path=str(screenshots / "dashboard-phone.png"), full_page=True)


def _assert_accessible(page: Any, where: str) -> None:
    # run through the DevTools protocol: the page's CSP (rightly) refuses an injected <script>
    page.evaluate(AXE.read_text() + "\n;0")
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{where}: {bad}"


def test_the_page_survives_a_controller_restart(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str]
) -> None:
    page = dashboard().login(tokens["viewer"])
    page.evaluate("window.__sameDocument = true")
    page.wait_for_function("() => document.body.dataset.live === 'true'", timeout=LIVE_TIMEOUT_MS)
    controller = _children(web_rack.process.pid)["racklet.controller"]
    os.kill(controller, signal.SIGKILL)
    page.wait_for_selector("#banner", state="visible", timeout=LIVE_TIMEOUT_MS)
    page.wait_for_selector("#banner", state="hidden", timeout=120_000)
    try:
        web_rack.cli("power", "off", "unit-1")
        page.wait_for_selector("#tile-unit-1[data-phase=Off]", timeout=LIVE_TIMEOUT_MS * 2)
        assert page.evaluate("window.__sameDocument") is True
    finally:
        web_rack.cli("power", "on", "unit-1")
        _wait_unit(web_rack, "unit-1", "Running")


def test_the_console_streams_while_a_unit_boots(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str]
) -> None:
    page = dashboard().login(tokens["operator"])
    page.goto(page.url.split("#")[0] + "#/unit/unit-1")
    page.wait_for_function("() => Number(document.querySelector('#console').dataset.lines) > 0")
    before = int(page.get_attribute("#console", "data-lines"))
    page.click("#unit-power-cycle")
    page.click("#confirm-ok")
    page.wait_for_function(
        f"() => Number(document.querySelector('#console').dataset.lines) > {before}",
        timeout=LIVE_TIMEOUT_MS * 2,
    )
    _wait_unit(web_rack, "unit-1", "Running")
    page.wait_for_timeout(2000)
    lines = page.text_content("#console").splitlines()
    assert len(lines) > before + 1, lines[-5:]


def test_a_fault_injected_from_the_page_shows_on_the_rack_view_and_clears(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str]
) -> None:
    page = dashboard().login(tokens["admin"])
    # the form is built from the Fault kind's schema once it arrived: wait for its fields
    page.wait_for_selector("#fault-type", timeout=LIVE_TIMEOUT_MS)
    page.fill("#fault-name", "web-fault")
    page.select_option("#fault-type", "PowerLoss")  # the form's fields come from the schema
    page.fill("#fault-units", "unit-2")
    # Enter in the form's last field submits it (the keyboard path): unlike a click at the
    # button's coordinates, it cannot miss when a live update moves the layout meanwhile
    page.press("#fault-units", "Enter")
    page.wait_for_selector("#confirm[open]", timeout=LIVE_TIMEOUT_MS)
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/faults") and r.request.method == "POST",
        timeout=LIVE_TIMEOUT_MS,
    ) as created:
        page.click("#confirm-ok")
    assert created.value.status == 201, created.value.text()
    page.wait_for_selector("#confirm", state="hidden")
    try:
        page.wait_for_selector("#tile-unit-2 .badge", timeout=LIVE_TIMEOUT_MS)
    except Exception as exc:  # say what the controller and the page knew, not just "timeout"
        fault = web_rack.cli("fault", "describe", "web-fault", check=False)
        shown = page.text_content("#error")
        raise AssertionError(f"no badge on unit-2; page error {shown!r}; {fault.stdout}") from exc
    page.click("text=Clear web-fault")
    page.wait_for_selector("#tile-unit-2 .badge", state="detached", timeout=LIVE_TIMEOUT_MS)
