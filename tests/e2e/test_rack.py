"""End to end: a 5-unit twin rack boots securely, powers units off and on, refuses tampering."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from racklet.boot import TufRepository, build_default_payload
from racklet.net import client_context
from tests.e2e.conftest import RunningRack, phase
from tests.promtool import check_both_formats

UNITS = [f"unit-{i}" for i in range(1, 6)]


def all_running(units: dict[str, dict[str, object]]) -> bool:
    return all(phase(units, name) == "Running" for name in UNITS)


def test_all_units_boot_to_running(rack: RunningRack) -> None:
    units = rack.wait_for(all_running, "5/5 Running")
    for name in UNITS:
        status = units[name]["status"]
        assert 1.0 < status["powerWatts"] < 10.0, status
        assert status["osVersion"]
        assert status["agentUrl"].startswith("https://127.0.0.1:")
    table = rack.cli("get", "units").stdout.splitlines()
    assert table[0].split() == ["NAME", "SLOT", "PHASE", "POWER(W)", "TEMP(°C)", "LOAD(%)", "AGE"]
    assert [row.split()[2] for row in table[1:]] == ["Running"] * 5
    # the payloads came from the bulk-target server, each to the unit its certificate names
    served = (rack.state_dir / "logs" / "controller.log").read_text()
    for name in UNITS:
        assert f"component=boot-bulk unit={name} " in served, f"{name} not served in bulk"


def test_power_off_and_on_one_unit(rack: RunningRack) -> None:
    rack.wait_for(all_running, "5/5 Running")
    rack.cli("power", "off", "unit-3")
    units = rack.wait_for(
        lambda u: phase(u, "unit-3") == "Off" and u["unit-3"]["status"]["powerWatts"] < 0.05,
        "unit-3 Off at ~0 W",
    )
    others = [name for name in UNITS if name != "unit-3"]
    assert all(phase(units, name) == "Running" for name in others), units
    rack.cli("power", "on", "unit-3")
    rack.wait_for(all_running, "unit-3 Running again")
    boots = rack.cli("console", "unit-3").stdout.count("racklet bootstrap starting")
    # --wait waits for the cycle itself, not for the Running the unit still was before it
    out = rack.cli("power", "cycle", "unit-3", "--wait").stdout
    assert "computeunit/unit-3 is Running" in out, out
    assert rack.cli("console", "unit-3").stdout.count("racklet bootstrap starting") == boots + 1
    off = rack.cli("power", "off", "unit-3", "--wait")
    assert "computeunit/unit-3 is Off" in off.stdout
    refused = rack.cli("power", "cycle", "unit-3", "--wait", check=False)
    assert refused.returncode != 0 and "unit is off" in refused.stderr, refused.stderr
    rack.cli("power", "on", "unit-3")
    rack.wait_for(all_running, "unit-3 Running again")


def test_describe_and_console(rack: RunningRack) -> None:
    rack.wait_for(all_running, "5/5 Running")
    described = rack.cli("describe", "unit", "unit-1").stdout
    assert "Phase:         Running" in described
    console = rack.cli("console", "unit-1").stdout
    assert "verified" in console.lower(), console


def test_every_component_serves_openmetrics(rack: RunningRack) -> None:
    units = rack.wait_for(all_running, "5/5 Running")
    config = rack.config
    ca = client_context(config["api"]["caBundle"])
    endpoints = [config["api"]["url"] + "/metrics", config["units"][0]["bmc"]["url"] + "/metrics"]
    endpoints.append(units["unit-1"]["status"]["agentUrl"] + "/metrics")
    for url in endpoints:
        response = httpx.get(url, verify=ca, headers={"Accept": "application/openmetrics-text"})
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith(
            "application/openmetrics-text; version=1.0.0"
        )
        names = {family.name for family in text_string_to_metric_families(response.text)}
        assert names, url

    async def both_formats() -> None:  # promtool clean on every real endpoint, both formats
        async with httpx.AsyncClient(verify=ca) as client:
            for url in endpoints:
                await check_both_formats(client, url)

    asyncio.run(both_formats())
    controller = httpx.get(
        endpoints[0], verify=ca, headers={"Accept": "application/openmetrics-text"}
    ).text
    families = {f.name: f for f in text_string_to_metric_families(controller)}
    for needed in ("racklet_unit_power_watts", "racklet_unit_temperature_celsius"):
        assert {s.labels["unit"] for s in families[needed].samples} == set(UNITS)
    assert "racklet_unit_energy_joules" in families
    assert "racklet_busbar_power_watts" in families


def _publish(rack: RunningRack, version: str) -> Path:
    """Publish a new release of the default OS on the stable channel; return its target file."""
    boot_dir = Path(rack.state_dir) / "boot"
    size = rack.config["rack"]["payloadBytes"]
    repo = TufRepository.open(boot_dir)
    repo.publish(
        "stable", "racklet-os", version, {"payload.bin": build_default_payload(size, version)}
    )
    [target] = sorted(
        (boot_dir / "repo" / "targets").glob(f"stable/racklet-os/{version}/*.payload.bin")
    )
    return target


def test_tampered_payload_is_never_booted(rack: RunningRack) -> None:
    rack.wait_for(all_running, "5/5 Running")
    slot = Path(rack.state_dir) / "units" / "unit-2" / "slots"
    installed_before = {p: p.read_bytes() for p in slot.glob("*/payload.bin")}
    target = _publish(rack, "0.2.0")
    signed_sha256 = target.name.split(".", 1)[0]  # consistent snapshot: named by its hash
    tampered = bytearray(target.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    target.write_bytes(bytes(tampered))
    assert hashlib.sha256(tampered).hexdigest() != signed_sha256

    rack.cli("power", "cycle", "unit-2")
    units = rack.wait_for(lambda u: phase(u, "unit-2") == "BootFailed", "unit-2 BootFailed")
    messages = " ".join(
        c.get("message") or "" for c in units["unit-2"]["status"].get("conditions", [])
    )
    assert "hash mismatch" in messages.lower(), messages
    assert "boot failed" in rack.cli("console", "unit-2").stdout.lower()
    # Nothing unverified was installed: the verified slots are byte for byte what they were.
    assert {p: p.read_bytes() for p in slot.glob("*/payload.bin")} == installed_before

    _publish(rack, "0.3.0")  # a good release supersedes the tampered one
    rack.cli("power", "cycle", "unit-2")
    units = rack.wait_for(
        lambda u: phase(u, "unit-2") == "Running" and u["unit-2"]["status"]["osVersion"] == "0.3.0",
        "unit-2 Running 0.3.0",
    )
    assert all(phase(units, name) == "Running" for name in UNITS)


def test_rmc_aggregates_every_bmc(rack: RunningRack) -> None:
    config = rack.config
    rmc = config["rmc"]
    response = httpx.get(
        rmc["url"] + "/redfish/v1/Systems",
        auth=(rmc["username"], rmc["password"]),
        verify=client_context(config["api"]["caBundle"]),
    )
    assert response.status_code == 200
    members = sorted(m["@odata.id"] for m in response.json()["Members"])
    assert members == [f"/redfish/v1/Systems/{name}_{name}" for name in UNITS]


def test_a_stressed_unit_draws_and_heats_along_its_profile(rack: RunningRack) -> None:
    """racklet stress travels API -> heartbeat reply -> agent -> the twin's load; the Pi 4
    profile (idle 2.7 W, full 6.4 W, spread at most ±6 % and ±10 %) bounds the step."""
    units = rack.wait_for(all_running, "5/5 Running")
    before = units["unit-2"]["status"]
    assert before["cpuLoad"] == 0.05
    done = rack.cli("stress", "unit-2", "--cpu", "75", "--for", "10m")
    assert "stress 75 % of its cores" in done.stdout
    units = rack.wait_for(
        lambda u: (
            u["unit-2"]["status"].get("cpuLoad") == 0.75
            and u["unit-2"]["status"]["powerWatts"] > before["powerWatts"] + 1.5
            and u["unit-2"]["status"]["temperatureCelsius"] > before["temperatureCelsius"] + 5.0
        ),
        "unit-2 to draw and heat under 75 % load",
    )
    after = units["unit-2"]["status"]
    step = after["powerWatts"] - before["powerWatts"]  # 0.70 x (full - idle) of this board
    lowest, highest = 0.70 * (6.4 * 0.9 - 2.7 * 1.06), 0.70 * (6.4 * 1.1 - 2.7 * 0.94)
    assert lowest - 0.1 <= step <= highest + 0.1, (before, after)
    assert all(units[n]["status"]["cpuLoad"] == 0.05 for n in UNITS if n != "unit-2")
    refused = rack.cli("stress", "unit-2", "--cpu", "101", "--for", "1m", check=False)
    assert refused.returncode == 2 and "0..100" in refused.stderr
