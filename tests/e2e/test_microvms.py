"""MicroVMs on a real ``racklet up`` rack with real QEMU (TCG): a command runs and its
console reaches the CLI; what does not fit stays Pending naming the short resource; a
spinning VM's CPU becomes its unit's watts; a VM with ``restartPolicy: Always`` moves when its
unit is powered off, and after a partition heals it runs on one unit only, checked on the
QEMU processes themselves, not only in its status.

One two-unit rack serves every step, in order (a rack start and a guest boot are the slow
parts on a loaded machine). Where QEMU cannot run the module skips, and under CI fails
(``tests/vm/conftest.py``).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet.net import client_context
from racklet.twin import RackDescription, SimClock, TwinRack
from tests.vm.conftest import vm_image  # noqa: F401  (the fixture)

from .conftest import RunningRack, phase, start_rack, stop_rack

UNITS = ("unit-1", "unit-2")
BOOT_TIMEOUT = 240.0
"""A TCG guest's boot on a loaded 2-core host takes from 3 s to over a minute."""
SPEED = 2.0
"""Slow enough that the agent's load samples (every 0.25 simulated s) span many clock ticks
of QEMU's CPU time, fast enough that the rack comes up in seconds."""
QEMU = "qemu-system-x86_64"


@pytest.fixture(scope="module")
def vm_rack(tmp_path_factory: pytest.TempPathFactory, vm_image: bytes) -> Iterator[RunningRack]:  # noqa: F811
    running = start_rack(tmp_path_factory.mktemp("vms"), "--units", "2", "--speed", f"{SPEED:g}")
    try:
        running.wait_for(_all_running, "both units to run", timeout=120)
        image = running.state_dir / "busybox-1.0.0.img"
        image.write_bytes(vm_image)
        published = running.cli("image", "publish", str(image)).stdout
        assert "vm-images/busybox/1.0.0/image.tar" in published
        yield running
    finally:
        stop_rack(running)
        assert not _qemus(running), "a QEMU outlived the rack"


def _all_running(units: dict[str, dict[str, Any]]) -> bool:
    return all(phase(units, name) == "Running" for name in UNITS)


def _apply(rack: RunningRack, name: str, **spec: Any) -> None:
    manifest = rack.state_dir / f"{name}.json"
    body = {"image": {"name": "busybox", "version": "1.0.0"}, "memoryMiB": 128, **spec}
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": "racklet.dev/v1alpha1",
                "kind": "MicroVM",
                "metadata": {"name": name},
                "spec": body,
            }
        )
    )
    rack.cli("apply", "-f", str(manifest))


def _vm(rack: RunningRack, name: str) -> dict[str, Any]:
    vm: dict[str, Any] = json.loads(rack.cli("get", "microvms", name, "-o", "json").stdout)
    return vm


def _wait_vm(
    rack: RunningRack,
    name: str,
    done: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = BOOT_TIMEOUT,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    vm: dict[str, Any] = {}
    while time.monotonic() < deadline:
        vm = _vm(rack, name)
        if done(vm):
            return vm
        time.sleep(0.5)
    console = rack.cli("logs", f"microvm/{name}", check=False)
    raise AssertionError(
        f"timed out waiting for {what}; status: {vm.get('status')}\n"
        f"console:\n{console.stdout[-3000:]}{console.stderr}"
    )


def _status(vm: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = vm.get("status") or {}
    return status


def _qemus(rack: RunningRack, vm: str | None = None) -> list[tuple[int, str]]:
    """(pid, unit) of every QEMU this rack's units run (for ``vm`` only, if given): the
    kernel it boots lies in the unit's own storage, ``units/<unit>/vms/vm-<name>-*/``."""
    pattern = re.compile(
        re.escape(str(rack.state_dir / "units")) + r"/([^/]+)/vms/vm-(.+)-[^-/]+/vmlinuz"
    )
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].decode(errors="replace").endswith(QEMU):
            continue
        for arg in argv:
            match = pattern.fullmatch(arg.decode(errors="replace"))
            if match and (vm is None or match.group(2) == vm):
                found.append((int(proc.name), match.group(1)))
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class QemuWatch:
    """Samples the QEMU processes of one VM in the background: the most seen at once."""

    def __init__(self, rack: RunningRack, vm: str) -> None:
        self._rack, self._vm = rack, vm
        self.most = 0
        self.units: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            seen = _qemus(self._rack, self._vm)
            self.most = max(self.most, len(seen))
            self.units |= {unit for _, unit in seen}
            self._stop.wait(0.1)

    def __enter__(self) -> QemuWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_vm_runs_its_command_and_its_console_reaches_the_cli(vm_rack: RunningRack) -> None:
    _apply(vm_rack, "hello", userData='echo "hello from $(uname -r)"; exit 0')
    vm = _wait_vm(vm_rack, "hello", lambda v: _status(v).get("phase") == "Succeeded", "hello")
    assert _status(vm)["exitCode"] == 0 and _status(vm)["unit"] in UNITS
    logs = vm_rack.cli("logs", "microvm/hello").stdout.splitlines()
    assert "racklet-vm: init started" in logs and "racklet-vm: exit 0" in logs
    assert any(re.fullmatch(r"hello from \d+\.\d+\.\S+", line) for line in logs), logs
    # the console of a VM that ended follows to its end and returns
    followed = vm_rack.cli("console", "microvm/hello", "-f").stdout.splitlines()
    assert followed == logs
    _apply(vm_rack, "sad", userData="echo failing; exit 3")
    vm = _wait_vm(vm_rack, "sad", lambda v: _status(v).get("phase") == "Failed", "sad")
    assert _status(vm)["exitCode"] == 3
    assert "failing" in vm_rack.cli("logs", "vm/sad").stdout
    for name in ("hello", "sad"):
        vm_rack.cli("delete", "microvm", name)
    missing = vm_rack.cli("logs", "microvm/hello", check=False)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1


def test_vms_that_do_not_fit_stay_pending_naming_the_short_resource(
    vm_rack: RunningRack,
) -> None:
    """A twin Pi 4 reports 4 cores and 4096 MiB; its OS keeps 256 MiB."""
    _apply(vm_rack, "wide", vcpus=8)
    _apply(vm_rack, "big", memoryMiB=4096)
    for name, reason, words in (
        ("wide", "InsufficientCPU", "needs 8 vCPUs; the most free on a matching unit is 4"),
        ("big", "InsufficientMemory", "needs 4096 MiB; the most free on a unit with the cores"),
    ):

        def scheduled_false(vm: dict[str, Any]) -> bool:
            return any(
                c["type"] == "Scheduled" and c["status"] == "False"
                for c in _status(vm).get("conditions") or []
            )

        vm = _wait_vm(vm_rack, name, scheduled_false, f"{name} refused", timeout=60)
        (cond,) = [c for c in _status(vm)["conditions"] if c["type"] == "Scheduled"]
        assert (_status(vm)["phase"], cond["reason"]) == ("Pending", reason)
        assert words in cond["message"]
        assert not _status(vm).get("unit")
        vm_rack.cli("delete", "microvm", name)
    assert not _qemus(vm_rack)


def _board_step(rack: RunningRack, unit: str) -> float:
    """The per-core step of ``unit``'s own board: the profile's curve with the spread the
    rack's seed gave this board (the same description builds the same boards)."""
    config = rack.config
    description = RackDescription(
        name=config["rack"]["name"], units=len(UNITS), profile=config["rack"]["profile"]
    )
    twin = TwinRack(description, SimClock(1.0), _no_firmware, rack.state_dir / "board-model")
    board = twin.units[unit]
    return (board.full_load_watts - board.idle_watts) / board.profile.cores


async def _no_firmware(host: object) -> None:
    return None


def _energy(client: httpx.Client, unit: str) -> float:
    return float(client.get(f"/redfish/v1/Chassis/{unit}/Sensors/energy").json()["Reading"])


def _mean_watts(
    client: httpx.Client, unit: str, seconds: float, pid: int | None = None
) -> tuple[float, float]:
    """The unit's mean draw over ``seconds`` of wall time from its BMC's energy counter
    (simulated seconds are wall seconds × the speed), and the cores ``pid`` used meanwhile."""
    cpu0 = _cpu_seconds(pid) if pid is not None else 0.0
    e0, t0 = _energy(client, unit), time.monotonic()
    time.sleep(seconds)
    e1, t1 = _energy(client, unit), time.monotonic()
    cpu1 = _cpu_seconds(pid) if pid is not None else 0.0
    return (e1 - e0) / ((t1 - t0) * SPEED), (cpu1 - cpu0) / (t1 - t0)


def test_a_spinning_vm_raises_its_units_power_by_the_per_core_step(vm_rack: RunningRack) -> None:
    """One spinning vCPU is one busy core: its unit draws the board's per-core step more.
    On a busy host QEMU gets less than a core, and the unit's load is what it really used,
    so the rise is checked against the step times the cores QEMU used (read from ``/proc``
    over the same window)."""
    unit = "unit-1"
    units = {u["name"]: u for u in vm_rack.config["units"]}
    bmc = units[unit]["bmc"]
    ca = vm_rack.state_dir / "pki" / "ca.crt"
    with httpx.Client(
        base_url=bmc["url"], verify=client_context(ca), auth=(bmc["username"], bmc["password"])
    ) as client:
        idle, _ = _mean_watts(client, unit, 30.0)
        _apply(vm_rack, "spin", userData="while :; do :; done")
        vm = _wait_vm(vm_rack, "spin", lambda v: _status(v).get("phase") == "Running", "spin")
        assert _status(vm)["unit"] == unit  # the least loaded unit, by name
        ((pid, on),) = _qemus(vm_rack, "spin")
        assert on == unit
        time.sleep(3.0)  # the load follows within the agent's next window (1 s)
        busy, cores = _mean_watts(client, unit, 40.0, pid)
    vm_rack.cli("delete", "microvm", "spin")
    step = _board_step(vm_rack, unit)
    rise = busy - idle
    assert cores > 0.05, f"QEMU used {cores:.3f} cores: is the guest spinning?"
    assert rise == pytest.approx(step * cores, rel=0.10), (
        f"idle {idle:.3f} W, busy {busy:.3f} W, rise {rise:.3f} W; QEMU used {cores:.3f} "
        f"cores; the board's step is {step:.3f} W per core"
    )


def test_an_always_vm_moves_off_a_powered_off_unit_and_runs_once_after_a_partition(
    vm_rack: RunningRack,
) -> None:
    vm_rack.wait_for(_all_running, "both units to run", timeout=60)
    _apply(vm_rack, "web", restartPolicy="Always", userData="echo serving; sleep 100000")
    vm = _wait_vm(vm_rack, "web", lambda v: _status(v).get("phase") == "Running", "web")
    first = _status(vm)["unit"]
    other = next(u for u in UNITS if u != first)
    assert [unit for _, unit in _qemus(vm_rack, "web")] == [first]

    with QemuWatch(vm_rack, "web") as watch:
        vm_rack.cli("power", "off", first)
        vm = _wait_vm(
            vm_rack,
            "web",
            lambda v: _status(v).get("unit") == other and _status(v).get("phase") == "Running",
            f"web running on {other}",
        )
    assert _status(vm)["attempt"] == 2
    assert [unit for _, unit in _qemus(vm_rack, "web")] == [other]
    assert watch.most == 1, "two QEMUs of one VM at once"
    events = vm_rack.cli("events", "--for", "microvm/web").stdout
    assert "Rescheduling" in events and f"unit {first} is powered off" in events

    vm_rack.cli("power", "on", first)
    vm_rack.wait_for(_all_running, f"{first} back", timeout=120)
    with QemuWatch(vm_rack, "web") as watch:
        vm_rack.cli("fault", "inject", "partition", "--unit", other, "--name", "cut")
        vm = _wait_vm(
            vm_rack,
            "web",
            lambda v: _status(v).get("unit") == first and _status(v).get("phase") == "Running",
            f"web moved back to {first} after its lease",
        )
        vm_rack.cli("fault", "clear", "cut")
        vm_rack.wait_for(_all_running, f"{other} back after the partition", timeout=120)
        time.sleep(5.0)  # a few heartbeats of the healed unit: it must not start web again
    assert watch.most == 1, "two QEMUs of one VM at once"
    assert watch.units == {first, other}
    assert [unit for _, unit in _qemus(vm_rack, "web")] == [first]
    vm = _vm(vm_rack, "web")
    assert (_status(vm)["unit"], _status(vm)["attempt"], _status(vm)["phase"]) == (
        first,
        3,
        "Running",
    )
    vm_rack.cli("delete", "microvm", "web")
    deadline = time.monotonic() + 60
    while _qemus(vm_rack, "web") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _qemus(vm_rack, "web")
