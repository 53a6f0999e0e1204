"""Faults and hot-swap on a real ``racklet up`` rack: each shows the real reaction and the
recovery after ``clear``, and bad input is one line and a non-zero exit, never a crash.

One small rack serves every step (a rack start-up is the slow part on a loaded machine); the
steps run in order and each ends with every unit Running again.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet.net import client_context

from .conftest import RunningRack, phase, start_rack, stop_rack
from .test_supervise import _children, _uptimes

UNITS = ("unit-1", "unit-2", "unit-3")


@pytest.fixture(scope="module")
def fault_rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRack]:
    running = start_rack(tmp_path_factory.mktemp("faults"), "--units", "3", "--speed", "10")
    try:
        running.wait_for(_all_running, "every unit to run", timeout=120)
        yield running
    finally:
        stop_rack(running)


def _all_running(units: dict[str, dict[str, Any]]) -> bool:
    return all(phase(units, name) == "Running" for name in UNITS)


class PhaseRecorder:
    """Samples every unit's phase and power-cycle record in the background while a step runs."""

    def __init__(self, rack: RunningRack) -> None:
        self._rack = rack
        self.seen: dict[str, set[str]] = {name: set() for name in UNITS}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, unit in self._rack.units().items():
                self.seen[name].add(str(phase({name: unit}, name)))
            self._stop.wait(0.3)

    def __enter__(self) -> PhaseRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _error_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    return str(lines[0])


def _condition(unit: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (unit.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def _boots(rack: RunningRack, name: str) -> int:
    return rack.cli("console", name).stdout.count("racklet bootstrap starting")


def test_slot_pull_and_insert_leave_every_other_unit_running(fault_rack: RunningRack) -> None:
    rack = fault_rack
    boots = {name: _boots(rack, name) for name in ("unit-1", "unit-2")}
    with PhaseRecorder(rack) as recorder:
        assert rack.cli("slot", "pull", "3").stdout.strip() == "slot 3: unit-3 pulled"
        rack.wait_for(lambda u: phase(u, "unit-3") == "Absent", "unit-3 to be Absent", 30)
        assert "already empty" in _error_line(rack.cli("slot", "pull", "3", check=False))
        assert "occupied by unit-1" in _error_line(rack.cli("slot", "insert", "1", check=False))
        assert "no slot 9" in _error_line(rack.cli("slot", "pull", "9", check=False))
        rack.cli("slot", "insert", "3")
        rack.wait_for(_all_running, "unit-3 to run again after insert", 90)
    # Never out of Running (so never a heartbeat late past the timeout) and never rebooted.
    assert recorder.seen["unit-1"] == {"Running"} and recorder.seen["unit-2"] == {"Running"}
    assert {name: _boots(rack, name) for name in boots} == boots
    assert "Absent" in recorder.seen["unit-3"]
    slots = rack.cli("slot", "list").stdout
    assert "no (empty)" not in slots


def test_a_partition_makes_the_unit_unreachable_and_clear_brings_it_back(
    fault_rack: RunningRack,
) -> None:
    rack = fault_rack
    before = rack.units()["unit-2"]["status"].get("lastPowerCycle")
    out = rack.cli("fault", "inject", "partition", "--unit", "unit-2", "--name", "cut-2").stdout
    assert out.startswith("fault/cut-2 Active on unit-2")
    units = rack.wait_for(lambda u: phase(u, "unit-2") == "Unreachable", "unit-2 Unreachable", 30)
    assert "network" in _condition(units["unit-2"], "Ready")["message"]
    assert phase(units, "unit-1") == "Running"
    assert "fault/cut-2 Cleared" in rack.cli("fault", "clear", "cut-2").stdout
    units = rack.wait_for(_all_running, "unit-2 Running after the partition", 60)
    assert units["unit-2"]["status"].get("lastPowerCycle") == before  # no reboot asked
    listing = rack.cli("fault", "list").stdout
    assert "cut-2" in listing and "Partition" in listing and "Cleared" in listing


def test_a_bmc_hang_names_the_bmc_and_clear_recovers(fault_rack: RunningRack) -> None:
    rack = fault_rack
    rack.cli("fault", "inject", "bmc-hang", "--slots", "1", "--name", "hang-1")
    units = rack.wait_for(lambda u: phase(u, "unit-1") == "Unreachable", "unit-1 Unreachable", 30)
    assert "BMC" in _condition(units["unit-1"], "Ready")["message"]
    rack.cli("fault", "clear", "hang-1")
    rack.wait_for(_all_running, "unit-1 Running after the BMC hang", 60)


def test_sensor_faults_show_in_redfish_as_the_chip_reports_them(fault_rack: RunningRack) -> None:
    rack = fault_rack
    rack.cli("fault", "inject", "sensor-failure", "--unit", "unit-1", "-p", "mode=nan",
             "--name", "nan-1")  # fmt: skip
    unit = next(u for u in rack.config["units"] if u["name"] == "unit-1")
    sensor = f"{unit['bmc']['url']}/redfish/v1/Chassis/unit-1/Sensors/temperature"
    auth = (unit["bmc"]["username"], unit["bmc"]["password"])
    verify = client_context(Path(rack.config["api"]["caBundle"]))

    def reading() -> Any:
        response = httpx.get(sensor, auth=auth, verify=verify, timeout=10)
        assert response.status_code == 200, response.text
        return response.json().get("Reading", "missing")

    deadline = time.monotonic() + 20
    while reading() is not None and time.monotonic() < deadline:
        time.sleep(0.3)
    assert reading() is None  # NaN from the chip: no reading, not a crash
    rack.cli("fault", "clear", "nan-1")
    deadline = time.monotonic() + 20
    while not isinstance(reading(), float) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert isinstance(reading(), float)


def test_a_busbar_outage_powers_everything_off_and_the_rack_returns(
    fault_rack: RunningRack,
) -> None:
    rack = fault_rack
    # Long enough to be seen dark by a CLI poll on a loaded machine (each call takes seconds).
    rack.cli("fault", "inject", "busbar-outage", "--name", "outage", "--duration", "8s")
    # Every unit and every BMC loses power: the controller reaches no BMC.
    units = rack.wait_for(
        lambda u: all(phase(u, n) == "Unreachable" for n in UNITS), "the rack to go dark", 30
    )
    assert all("BMC" in _condition(units[n], "Ready")["message"] for n in UNITS)
    rack.wait_for(_all_running, "every unit Running after the outage", 120)
    fault = json.loads(rack.cli("get", "faults", "outage", "-o", "json").stdout)
    assert fault["status"]["phase"] == "Cleared"
    assert "duration ended" in fault["status"]["message"]


def test_bad_faults_are_one_line_errors_and_recorded_as_failed(fault_rack: RunningRack) -> None:
    rack = fault_rack
    line = _error_line(rack.cli("fault", "inject", "power-loss", "--unit", "unit-9", check=False))
    assert "no unit 'unit-9'" in line
    line = _error_line(rack.cli("fault", "inject", "brown-out", "-p", "watts=0.5", check=False))
    assert "below one unit's idle draw" in line
    rack.cli("fault", "inject", "power-loss", "--unit", "unit-3", "--name", "loss-3")
    line = _error_line(
        rack.cli("fault", "inject", "slot-pull", "--unit", "unit-3", "--name", "p3", check=False)
    )
    assert "PowerLoss fault 'loss-3'" in line
    described = rack.cli("describe", "faults", "p3").stdout
    assert "Refused" in described
    rack.cli("fault", "clear", "--all")
    rack.wait_for(_all_running, "unit-3 back after its power loss", 90)


def test_a_new_board_in_a_known_slot_is_a_new_machine(fault_rack: RunningRack) -> None:
    rack = fault_rack
    issued = rack.state_dir / "pki" / "issued" / "unit-3.pem"
    old = issued.read_bytes()
    uuid_before = (rack.state_dir / "bmc" / "unit-3" / "uuid").read_text()
    with PhaseRecorder(rack) as recorder:
        rack.cli("slot", "pull", "3")
        rack.wait_for(lambda u: phase(u, "unit-3") == "Absent", "unit-3 Absent", 30)
        out = rack.cli("slot", "insert", "3", "--new-board").stdout
        assert "slot 3: a new board inserted" in out
        assert "revoked the old board's unit-3 certificate" in out
        # Enrolled at once (the controller sees the board inserted), then a first boot.
        rack.wait_for(_all_running, "the new board to enrol and run", 90)
    assert recorder.seen["unit-1"] == {"Running"} and recorder.seen["unit-2"] == {"Running"}
    assert (rack.state_dir / "bmc" / "unit-3" / "uuid").read_text() != uuid_before
    assert issued.read_bytes() != old  # a new identity, certified through CertificateService
    revoked = json.loads((rack.state_dir / "pki" / "revoked.json").read_text())
    from cryptography import x509

    assert str(x509.load_pem_x509_certificate(old).serial_number) in revoked


def test_a_brown_out_resets_units_as_the_busbar_says_and_clear_restores(
    fault_rack: RunningRack,
) -> None:
    rack = fault_rack
    with PhaseRecorder(rack) as recorder:
        # 3 running units draw about 8.7 W: a 4 W PSU browns out and resets them all.
        rack.cli("fault", "inject", "brown-out", "-p", "watts=4", "--name", "sag")
        rack.wait_for(
            lambda u: all(phase(u, n) != "Running" for n in UNITS), "every unit reset", 30
        )
        rack.cli("fault", "clear", "sag")
        rack.wait_for(_all_running, "every unit Running after the brown-out", 90)
    assert all(len(recorder.seen[n]) > 1 for n in UNITS)


def test_a_corrupted_active_slot_is_caught_at_the_next_boot(fault_rack: RunningRack) -> None:
    rack = fault_rack
    out = rack.cli("fault", "inject", "storage-corruption", "--unit", "unit-2", "--name", "rot")
    assert "bitflip in unit-2 slot" in out.stdout
    rack.cli("power", "cycle", "unit-2")
    units = rack.wait_for(
        lambda u: (
            phase(u, "unit-2") in ("Running", "BootFailed")
            and (u["unit-2"]["status"].get("lastPowerCycle") is not None)
        ),
        "unit-2 to boot again",
        90,
    )
    assert phase(units, "unit-2") == "Running"
    console = rack.cli("console", "unit-2").stdout
    # The re-hash before boot catches it; the unit installs the release into the other slot,
    # try-boots it and commits it, and says why on its console.
    assert re.search(r"slot [AB] is corrupt: its payload no longer matches SHA-256", console)
    assert re.search(r"health check passed; slot [AB] committed", console)
    rack.cli("fault", "clear", "rot")
    rack.wait_for(_all_running, "unit-2 Running", 90)


def test_a_controller_crash_leaves_the_hardware_running_and_happens_once(
    fault_rack: RunningRack,
) -> None:
    rack = fault_rack
    children = _children(rack.process.pid)
    before = _uptimes(rack)
    boots = {name: _boots(rack, name) for name in UNITS}
    cycled = {name: u["status"].get("lastPowerCycle") for name, u in rack.units().items()}
    # Recorded Active before the crash; the CLI rides out the restart and shows what it saw.
    out = rack.cli("fault", "inject", "controller-crash", "--name", "boom").stdout
    assert re.match(r"fault/boom (Active|Cleared) on the rack: ", out), out
    deadline = time.monotonic() + 60
    while _children(rack.process.pid).get("racklet.controller") in (
        None,
        children["racklet.controller"],
    ):
        assert time.monotonic() < deadline, "the supervisor did not kill the controller"
        time.sleep(0.1)
    after = _children(rack.process.pid)
    assert after["racklet.hardware_side"] == children["racklet.hardware_side"]
    during = _uptimes(rack)  # the units' OSes ran on, answering on their own
    assert all(during[name] > before[name] for name in UNITS)

    def fault() -> dict[str, Any]:
        result = rack.cli("get", "faults", "boom", "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else {}

    deadline = time.monotonic() + 60
    while (fault().get("status") or {}).get("phase") != "Cleared":
        assert time.monotonic() < deadline, f"boom never Cleared: {fault()}"
        time.sleep(0.3)
    status = fault()["status"]
    assert "came back after the crash" in status["message"]
    assert status["crashedController"].split("/")[1] == str(children["racklet.controller"])
    units = rack.wait_for(_all_running, "every unit Running under the new controller", 60)
    assert {n: u["status"].get("lastPowerCycle") for n, u in units.items()} == cycled
    assert {name: _boots(rack, name) for name in UNITS} == boots  # nobody rebooted
    assert all(_uptimes(rack)[name] > during[name] for name in UNITS)
    time.sleep(2)  # one-shot: the restarted controller does not crash again
    assert _children(rack.process.pid)["racklet.controller"] == after["racklet.controller"]


def _patch_rack(rack: RunningRack, spec: dict[str, Any]) -> None:
    config = rack.config
    response = httpx.patch(
        f"{config['api']['url']}/api/v1/racks/{config['rack']['name']}",
        json={"spec": spec},
        headers={"Authorization": f"Bearer {config['api']['token']}"},
        verify=client_context(Path(config["api"]["caBundle"])),
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_inserted_boards_follow_the_racks_enrolment_and_power_policy(
    fault_rack: RunningRack,
) -> None:
    rack = fault_rack
    _patch_rack(rack, {"newUnitPower": "Off", "autoEnroll": False})
    try:
        # newUnitPower Off: the board comes back in its slot and stays off until asked.
        rack.cli("slot", "pull", "3")
        rack.wait_for(lambda u: phase(u, "unit-3") == "Absent", "unit-3 Absent", 30)
        rack.cli("slot", "insert", "3")
        units = rack.wait_for(
            lambda u: _condition(u["unit-3"], "PowerHold").get("status") == "True",
            "unit-3 held off",
            60,
        )
        assert phase(units, "unit-3") == "Off"
        assert "racklet power on unit-3" in _condition(units["unit-3"], "PowerHold")["message"]
        time.sleep(2)  # 20 simulated seconds: a held board is not powered on meanwhile
        assert phase(rack.units(), "unit-3") == "Off"
        rack.cli("power", "on", "unit-3")
        rack.wait_for(_all_running, "unit-3 Running after racklet power on", 90)

        # autoEnroll off: a new board gets no identity until its slot is approved.
        line = _error_line(rack.cli("slot", "approve", "1", check=False))
        assert line == "racklet: error: slot 1 (unit-1) is not awaiting enrolment"
        rack.cli("slot", "pull", "3")
        rack.wait_for(lambda u: phase(u, "unit-3") == "Absent", "unit-3 Absent", 30)
        rack.cli("slot", "insert", "3", "--new-board")
        units = rack.wait_for(
            lambda u: _condition(u["unit-3"], "Enrolled").get("reason") == "AwaitingApproval",
            "the new board to await approval",
            30,  # at once: the controller sees the board inserted, not at its next round
        )
        assert "racklet slot approve 3" in _condition(units["unit-3"], "Enrolled")["message"]
        out = rack.cli("slot", "approve", "3").stdout
        assert out.strip() == "slot 3: unit-3 approved; the controller enrols its board"
        rack.wait_for(
            lambda u: _condition(u["unit-3"], "Enrolled").get("reason") == "Approved",
            "the new board enrolled",
            30,  # at once: the approval wakes the certificate round
        )
        rack.cli("power", "on", "unit-3")  # it was held off too (newUnitPower Off)
        rack.wait_for(_all_running, "the approved new board Running", 120)
    finally:
        _patch_rack(rack, {"newUnitPower": "On", "autoEnroll": True})
