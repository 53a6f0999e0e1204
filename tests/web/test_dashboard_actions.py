"""The dashboard's remaining actions in real headless Chromium against a real rack (issue 13):
the locate LED, the boot override, slot pull and insert, a rollout started, paused and rolled
back, and a factory reset that needs the rack's name typed. Each goes through ``/api/v1``
like the CLI's (the spec, the reconcilers, the hardware side's control endpoint), and each
is checked where the CLI would see it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from racklet.boot import build_default_payload
from tests.e2e.conftest import RunningRack, phase
from tests.web.conftest import LIVE_TIMEOUT_MS


def _go(page: Any, view: str) -> None:
    page.goto(page.url.split("#")[0] + f"#/{view}")


def _confirm(page: Any) -> None:
    page.wait_for_selector("#confirm[open]", timeout=LIVE_TIMEOUT_MS)
    page.click("#confirm-ok")
    page.wait_for_selector("#confirm", state="hidden")


def _status(rack: RunningRack, unit: str) -> dict[str, Any]:
    return dict(rack.units()[unit].get("status") or {})


def test_the_locate_led_lights_on_the_bmc_and_shows_on_the_tile(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str], screenshots: Path
) -> None:
    page = dashboard().login(tokens["operator"])
    assert page.query_selector("#tile-unit-1 [data-role=locate]") is None
    _go(page, "unit/unit-1")
    page.click("#unit-locate")
    # status.locate is what the BMC's chassis says (LocationIndicatorActive), read back
    web_rack.wait_for(lambda u: (u["unit-1"].get("status") or {}).get("locate"), "LED on")
    _go(page, "rack")
    page.wait_for_selector("#tile-unit-1 [data-role=locate]", timeout=LIVE_TIMEOUT_MS)
    assert "locate LED on" in page.text_content("#tile-unit-1")
    _go(page, "unit/unit-1")
    page.wait_for_selector("#unit-locate[aria-pressed=true]")
    page.wait_for_selector("#identity dt:text-is('expires')", timeout=LIVE_TIMEOUT_MS)
    page.screenshot(path=str(screenshots / "dashboard-unit-actions.png"), full_page=True)
    page.click("#unit-locate")
    _go(page, "rack")
    page.wait_for_selector(
        "#tile-unit-1 [data-role=locate]", state="detached", timeout=LIVE_TIMEOUT_MS
    )
    assert _status(web_rack, "unit-1")["locate"] is False


def test_a_boot_override_set_from_the_page_reaches_the_bmc(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str]
) -> None:
    page = dashboard().login(tokens["operator"])
    _go(page, "unit/unit-3")
    # the choices are the BMC's own (its Redfish AllowableValues, read through the controller)
    page.wait_for_selector("#redfish dt:text-is('Boot')", timeout=LIVE_TIMEOUT_MS)
    targets = page.eval_on_selector_all("#boot-target option", "os => os.map(o => o.value)")
    assert "UefiHttp" in targets and "None" in targets
    try:
        page.select_option("#boot-target", "UefiHttp")
        page.select_option("#boot-enabled", "Continuous")
        page.click("#boot-set")
        _confirm(page)
        web_rack.wait_for(
            lambda u: (
                (u["unit-3"].get("status") or {}).get("bootOverride")
                == {"target": "UefiHttp", "enabled": "Continuous"}
            ),
            "the BMC shows the override",
        )
        page.wait_for_selector("dd:text-is('UefiHttp (Continuous)')", timeout=LIVE_TIMEOUT_MS)
    finally:
        page.select_option("#boot-target", "None")
        page.select_option("#boot-enabled", "Disabled")
        page.click("#boot-set")
        _confirm(page)
        web_rack.wait_for(
            lambda u: (
                ((u["unit-3"].get("status") or {}).get("bootOverride") or {}).get("enabled")
                == "Disabled"
            ),
            "the override cleared",
        )


def test_a_pull_makes_the_tile_absent_and_an_insert_brings_it_back(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str]
) -> None:
    operator = dashboard().login(tokens["operator"])
    assert operator.query_selector("#slot-unit-3") is None  # hot-swap is an admin's
    page = dashboard().login(tokens["admin"])
    page.click("#slot-unit-3")
    assert "Pull the board of unit-3" in page.text_content("#confirm-text")
    _confirm(page)
    try:
        page.wait_for_selector("#tile-unit-3[data-phase=Absent]", timeout=LIVE_TIMEOUT_MS)
        slots = web_rack.cli("slot", "list").stdout
        assert any(line.split()[:1] == ["3"] and "no" in line for line in slots.splitlines())
        assert page.text_content("#slot-unit-3") == "Insert"
    finally:
        page.click("#slot-unit-3")  # an insert asks nothing: it breaks nothing
        page.wait_for_selector("#tile-unit-3:not([data-phase=Absent])", timeout=LIVE_TIMEOUT_MS * 2)
        web_rack.wait_for(lambda u: phase(u, "unit-3") == "Running", "unit-3 Running", 120)
    audit = web_rack.cli("audit", "--principal", "rack-admin").stdout
    assert "pull" in audit and "slots/3" in audit


def test_a_rollout_started_from_the_page_is_rolled_back(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str], tmp_path: Path
) -> None:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(build_default_payload(8192, "9.0.0"))
    out = web_rack.cli(
        "release", "publish", "--name", "racklet-os", "--version", "9.0.0", str(payload)
    ).stdout
    release = out.split()[0].removeprefix("release/")
    page = dashboard().login(tokens["admin"])
    _go(page, "rollouts")
    page.wait_for_selector(
        f"#rollout-release option[value='{release}']", state="attached", timeout=LIVE_TIMEOUT_MS
    )
    page.fill("#rollout-name", "web-rollout")
    page.select_option("#rollout-release", release)
    page.check("#rollout-paused")  # held before its first batch: no unit is power-cycled
    page.click("#rollout-start")
    _confirm(page)
    page.wait_for_selector("#rollout-pause-web-rollout:text-is('Resume')", timeout=LIVE_TIMEOUT_MS)
    page.wait_for_selector("#rollout-rollback-web-rollout", timeout=LIVE_TIMEOUT_MS)
    page.click("#rollout-rollback-web-rollout")
    _confirm(page)
    page.wait_for_selector(".rollout .phase:text-is('RolledBack')", timeout=LIVE_TIMEOUT_MS)
    rollout = json.loads(web_rack.cli("get", "rollout", "web-rollout", "-o", "json").stdout)
    assert rollout["spec"]["rollBack"] is True and rollout["status"]["phase"] == "RolledBack"
    events = web_rack.cli("events", "--for", "rollout/web-rollout").stdout
    assert "RollingBack" in events and "RolledBack" in events
    web_rack.cli("delete", "rollout", "web-rollout")


def test_a_factory_reset_is_refused_without_the_rack_name_typed(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str]
) -> None:
    rack_name = str(web_rack.config["rack"]["name"])
    page = dashboard().login(tokens["admin"])
    page.click("#factory-reset")
    page.wait_for_selector("#confirm[open]")
    assert page.is_visible("#confirm-input") and page.is_disabled("#confirm-ok")
    page.fill("#confirm-input", rack_name + "x")
    assert page.is_disabled("#confirm-ok")  # not the name: nothing can be confirmed
    page.keyboard.press("Escape")
    page.wait_for_selector("#confirm", state="hidden")
    # the server wants the name too: a tampered page or a script without it is refused
    refused = page.evaluate(
        """async (name) => {
             const s = await (await fetch('/ui/v1/session')).json();
             const post = (body) => fetch(`/api/v1/racks/${name}/factory-reset`, {method: 'POST',
               headers: {'Content-Type': 'application/json', 'X-Racklet-CSRF': s.csrf},
               body: JSON.stringify(body)}).then(async r => [r.status, (await r.json()).message]);
             return [await post({}), await post({confirm: name + 'x'})];
           }""",
        rack_name,
    )
    assert [code for code, _ in refused] == [400, 400], refused
    assert f'"confirm": "{rack_name}"' in refused[0][1]
    viewer = dashboard().login(tokens["viewer"])
    assert viewer.query_selector("#factory-reset") is None
    status = viewer.evaluate(
        """async (name) => {
             const s = await (await fetch('/ui/v1/session')).json();
             return (await fetch(`/api/v1/racks/${name}/factory-reset`, {method: 'POST',
               headers: {'Content-Type': 'application/json', 'X-Racklet-CSRF': s.csrf},
               body: JSON.stringify({confirm: name})})).status;
           }""",
        rack_name,
    )
    assert status == 403
    assert web_rack.units()  # the rack's admin token still works: no reset happened
