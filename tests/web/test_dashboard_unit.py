"""The unit view's A/B OS slots and rollback floor after a real rollout (issue 13), in real
headless Chromium against a real rack: the release is published and rolled out with the
CLI, the units are power-cycled into it by the controller, the bootstrap writes the slot not
booted, try-boots it and commits it; the page, open all along, shows the new version in the
other slot, booted, and the floor risen to it, without a reload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from racklet.boot import build_default_payload
from tests.e2e.conftest import RunningRack, phase
from tests.web.conftest import LIVE_TIMEOUT_MS

ROLLOUT = """apiVersion: racklet.dev/v1alpha1
kind: Rollout
metadata: {name: web-slots}
spec:
  release: RELEASE
  canary: 0
  batchSize: 3
  maxUnavailable: 3
  healthDeadlineSeconds: 300
"""


def _slot(page: Any, name: str) -> dict[str, str]:
    row = page.locator(f"#os-slot-{name}")
    return {
        "version": row.locator("td.version").inner_text(),
        "role": row.locator("td.role").inner_text(),
    }


def test_after_a_rollout_the_unit_view_shows_the_new_version_in_the_other_slot_and_the_floor(
    dashboard: Any, web_rack: RunningRack, tokens: dict[str, str], tmp_path: Path, screenshots: Path
) -> None:
    web_rack.wait_for(lambda u: all(phase(u, n) == "Running" for n in u), "every unit Running", 180)
    page = dashboard().login(tokens["viewer"])  # a viewer sees the slots too
    page.goto(page.url.split("#")[0] + "#/unit/unit-2")
    page.wait_for_selector("#os-slots tr[data-booted=true]", timeout=LIVE_TIMEOUT_MS)
    booted = page.locator("#os-slots tr[data-booted=true] th").inner_text()
    other = "B" if booted == "A" else "A"
    before = _slot(page, booted)
    assert before["role"] == "booted"
    old_version = before["version"]
    assert page.locator("#rollback-floor").inner_text() == old_version

    payload = tmp_path / "payload.bin"
    payload.write_bytes(build_default_payload(web_rack.config["rack"]["payloadBytes"], "9.5.0"))
    out = web_rack.cli(
        "release", "publish", "--name", "racklet-os", "--version", "9.5.0", str(payload)
    ).stdout
    release = out.split()[0].removeprefix("release/")
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(ROLLOUT.replace("RELEASE", release))
    web_rack.cli("apply", "-f", str(manifest))

    # The page, never reloaded, follows the unit through its trial to the commit.
    page.wait_for_selector(
        f"#os-slot-{other}[data-booted=true][data-trial=false] td.version:text-is('9.5.0')",
        timeout=180_000,
    )
    page.wait_for_selector("#rollback-floor:text-is('9.5.0')", timeout=LIVE_TIMEOUT_MS)
    assert _slot(page, other) == {"version": "9.5.0", "role": "booted"}
    assert _slot(page, booted) == {"version": old_version, "role": "–"}
    # The view is drawn again at each change: a clip of the page, not of a (replaced) element.
    box = page.evaluate(
        "(() => { const r = document.getElementById('os-slots').getBoundingClientRect();"
        " return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; })()"
    )
    page.screenshot(path=str(screenshots / "dashboard-unit-slots.png"), full_page=True, clip=box)
    web_rack.cli("wait", "rollout/web-slots", "--for=jsonpath={.status.phase}=Complete")
    status = web_rack.units()["unit-2"]["status"]
    assert status["bootSlot"] == other and status["rollbackFloor"] == "9.5.0"
    assert status["osVersion"] == "9.5.0"
