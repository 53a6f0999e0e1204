"""Chaos with invariants: random sequences of faults, hot-swaps, power changes and a rollout
on a real rack, with the rack's promises checked after every step and after all faults clear.

The promises (docs/faults.md, "Chaos with invariants"):

1. no unit ever boots an unverified payload: every OS boot the twin saw (its UART) ran bytes
   whose SHA-256 the rack's TUF repository signed, read from the slot at the instant of boot;
2. no unit is bricked: once every fault is cleared, every unit is Running within a bound;
3. no acknowledged write is lost: every write the API acknowledged is still there;
4. the busbar never carried more than its rating, except while a brown-out lowered it (the
   busbar's own record: its peak draw and every overload, with the rating in force then);
5. energy counters never decrease (each BMC's ``racklet_unit_energy_joules_total``, across
   BMC restarts and outages);
6. the rollout ends Complete or RolledBack, never stuck.

CI runs a bounded, derandomized sequence (``CHAOS_STEPS`` steps, ``CHAOS_EXAMPLES``
sequences, always the same); ``python -m bench chaos`` runs longer and random ones.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from racklet.boot import build_default_payload
from racklet.controller._hardware import HardwareRefused

from .rig import ChaosRack

UNITS = 3
SPEED = 20.0
PSU_WATTS = 40.0  # below 3 x the 15.3 W a unit may draw: the controller must stagger power-on
STEPS = int(os.environ.get("CHAOS_STEPS", "29"))  # the schedule's length: each fault once
EXAMPLES = int(os.environ.get("CHAOS_EXAMPLES", "1"))
RANDOM = bool(os.environ.get("CHAOS_RANDOM"))  # bench: a new sequence each run
SETTLE_SECONDS = 0.7  # after each step: 14 simulated seconds, 7 heartbeat intervals
SHRINK = bool(os.environ.get("CHAOS_SHRINK"))
VERBOSE = bool(os.environ.get("CHAOS_VERBOSE"))
RECOVERY_SECONDS = 150.0  # every unit Running after the last fault clears (loaded CI machine)
FAULT_START_SECONDS = 30.0
UNIT_NAMES = [f"unit-{n}" for n in range(1, UNITS + 1)]
Step = tuple[str, Any]
FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("BusbarOutage", {}),
    ("BrownOut", {"watts": 4}),
    ("BrownOut", {"watts": 9}),
    ("PowerLoss", {}),
    ("Partition", {}),
    ("Partition", {"path": "bmc-management"}),
    ("LinkDegradation", {"latencyMs": 40, "loss": 0.05}),
    ("BmcHang", {}),
    ("BmcReboot", {}),
    ("SensorFailure", {"sensor": "temperature", "mode": "nan"}),
    ("SensorFailure", {"sensor": "power", "mode": "absent"}),
    ("StorageCorruption", {"slot": "active", "mode": "bitflip"}),
    ("SlotPull", {}),
]
RACK_WIDE = {"BusbarOutage", "BrownOut"}


@pytest.fixture(scope="module")
def chaos_rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosRack]:
    rack = ChaosRack(tmp_path_factory.mktemp("chaos") / "rack", UNITS, SPEED, PSU_WATTS)
    try:
        rack.start()
        rack.until(lambda: _all_running(rack), "the rack to run", RECOVERY_SECONDS)
        yield rack
    finally:
        rack.close()


def _all_running(rack: ChaosRack) -> bool:
    phases = rack.phases()
    return all(phases.get(name) == "Running" for name in rack.names)


class RackChaos(RuleBasedStateMachine):
    """One sequence of steps on the shared rack; ``teardown`` mends it and checks recovery."""

    rack: ChaosRack
    rollouts = 0
    names = 0

    def __init__(self) -> None:
        super().__init__()
        self.faults: dict[str, str] = {}  # active (or refused) fault name -> kind
        self.pulled: set[int] = set()
        self.writes: dict[str, str] = {}  # acknowledged annotation -> value
        self.objects: list[tuple[str, str]] = []  # acknowledged creations (plural, name)
        self.energy: dict[str, float] = {}
        self.step = 0
        self.rollout: str | None = None
        self.brownout_seen = False
        self.schedule: list[Step] = []
        busbar = self.rack.twin.rack.busbar
        self.brownouts_before = self.rack.twin.call(lambda: busbar.brownouts)

    # -- the schedule ---------------------------------------------------------------------

    @initialize(rng=st.randoms(use_true_random=True))
    def plan(self, rng: random.Random) -> None:
        """This sequence's schedule: every fault kind once, in a random order on random
        units, with hot-swaps, power changes, clears and one rollout mixed in at random.
        (Drawn from one seeded ``Random`` rather than rule by rule: hypothesis's first,
        simplest example of rule choices would be one rule over and over, and CI runs few.)"""
        faults = rng.sample(FAULTS, len(FAULTS))
        steps: list[Step] = []
        for kind, params in faults:
            unit = rng.choice(UNIT_NAMES)
            steps.append(("inject", (kind, params, unit)))
            if kind == "StorageCorruption":  # the disk rots, then the unit reboots
                steps.append(("cycle", unit))
        for _ in range(2):
            at = rng.randrange(len(steps) + 1)
            steps[at:at] = [("pull", rng.randint(1, UNITS)), ("insert", None)]
            at = rng.randrange(len(steps) + 1)
            unit = rng.choice(UNIT_NAMES)
            steps[at:at] = [("power", (unit, "Off")), ("power", (unit, "On"))]
        for _ in range(len(faults) // 2):
            steps.insert(rng.randrange(1, len(steps) + 1), ("clear", rng.randrange(8)))
        steps.insert(rng.randrange(len(steps) + 1), ("rollout", None))
        self.schedule = steps[:STEPS]

    @precondition(lambda self: bool(self.schedule))
    @rule()
    def next_step(self) -> None:
        action, argument = self.schedule.pop(0)
        getattr(self, f"_{'clear_one' if action == 'clear' else action}")(argument)

    @precondition(lambda self: not self.schedule)
    @rule()
    def watch(self) -> None:
        """Past the schedule (a longer run's step count): the rack runs on, still checked."""
        self._settle("watching")

    # -- steps --------------------------------------------------------------------------

    def _inject(self, fault: tuple[str, dict[str, Any], str]) -> None:
        kind, params, unit = fault
        if len(self.faults) >= 2:  # at most two at once: the oldest goes first
            self._clear(min(self.faults))
        name = f"chaos-{os.getpid()}-{self._next()}"
        spec: dict[str, Any] = {"type": kind, "params": params}
        if kind not in RACK_WIDE:
            spec["selector"] = {"names": [unit]}
        body = {"apiVersion": "racklet.dev/v1alpha1", "kind": "Fault",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip
        response = self.rack.request("POST", "/api/v1/faults", json=body)
        assert response.status_code == 201, response.text
        self.objects.append(("faults", name))
        phase = self._fault_phase(name, ("Active", "Failed"))
        if phase == "Active":
            self.faults[name] = kind
            self.brownout_seen |= kind == "BrownOut"
        self._write()
        self._settle(f"{kind} {params} on {spec.get('selector', 'the rack')}: {phase}")

    def _clear_one(self, pick: int) -> None:
        if not self.faults:
            return
        name = sorted(self.faults)[pick % len(self.faults)]
        self._clear(name)
        self._write()
        self._settle(f"cleared {name}")

    def _pull(self, slot: int) -> None:
        if slot in self.pulled:
            return
        try:
            self.rack.control(lambda control: control.pull(slot))
        except HardwareRefused as exc:  # refused: a fault emptied the slot or holds the board
            assert "empty" in str(exc) or "held by" in str(exc), exc
            self._settle(f"pull of slot {slot} refused: {exc}")
            return
        self.pulled.add(slot)
        self._write()
        self._settle(f"pulled slot {slot}")

    def _insert(self, _: None) -> None:
        if not self.pulled:
            return
        slot = min(self.pulled)
        self.rack.control(lambda control: control.insert(slot))
        self.pulled.discard(slot)
        self._write()
        self._settle(f"inserted slot {slot}")

    def _power(self, change: tuple[str, str]) -> None:
        unit, power = change
        response = self.rack.request(
            "PATCH", f"/api/v1/computeunits/{unit}", json={"spec": {"power": power}}
        )
        assert response.status_code == 200, response.text
        self._write()
        self._settle(f"{unit} power {power}")

    def _cycle(self, unit: str) -> None:
        response = self.rack.request("POST", f"/api/v1/computeunits/{unit}/power-cycle")
        assert response.status_code < 300, response.text
        self._write()
        self._settle(f"{unit} power cycle")

    def _rollout(self, _: None) -> None:
        RackChaos.rollouts += 1
        version = f"0.{RackChaos.rollouts + 1}.0"
        self.rollout = self._roll_out(version)
        self._write()
        self._settle(f"rollout to {version}")

    # -- invariants, after every step ---------------------------------------------------

    @invariant()
    def only_verified_payloads_booted(self) -> None:
        signed = self.rack.signed_payloads()
        for boot in list(self.rack.twin.boots):
            assert boot.sha256 in signed, f"{boot.unit} booted unsigned bytes: {boot}"

    @invariant()
    def busbar_within_its_rating(self) -> None:
        busbar = self.rack.twin.rack.busbar
        peak, count, overloads = self.rack.twin.call(
            lambda: (busbar.peak_watts, busbar.brownouts, list(busbar.overloads))
        )
        assert peak <= busbar.nominal_watts, f"the busbar carried {peak:.2f} W"
        overloads = overloads[len(overloads) - min(len(overloads), count - self.brownouts_before) :]
        for sample in overloads:
            assert sample.rated_watts < busbar.nominal_watts, f"overload at full rating: {sample}"
        if overloads:
            assert self.brownout_seen, "an overload with no brown-out injected"

    @invariant()
    def energy_never_decreases(self) -> None:
        for unit, joules in self.rack.energy_counters().items():
            assert joules >= self.energy.get(unit, 0.0), f"{unit}: energy went back to {joules}"
            self.energy[unit] = joules

    @invariant()
    def acknowledged_writes_are_kept(self) -> None:
        annotations = self.rack.get("racks", "rack-1")["metadata"].get("annotations") or {}
        for key, value in self.writes.items():
            assert annotations.get(key) == value, f"acknowledged write {key} lost"
        for plural, name in self.objects:
            self.rack.get(plural, name)  # a lost object is a 404: raise_for_status raises

    # -- mending and the end state ------------------------------------------------------

    def teardown(self) -> None:
        for name in list(self.faults):
            self._clear(name)
        for slot in sorted(self.pulled):
            self.rack.control(lambda control, slot=slot: control.insert(slot))  # type: ignore[misc]
        self.pulled.clear()
        for unit in self.rack.names:
            self.rack.request(
                "PATCH", f"/api/v1/computeunits/{unit}", json={"spec": {"power": "On"}}
            ).raise_for_status()
        self.rack.until(lambda: _all_running(self.rack), "every unit Running (bricked?)",
                        RECOVERY_SECONDS)  # fmt: skip
        if self.rollout is not None:
            self.rack.until(self._rollout_ended, "the rollout to end", RECOVERY_SECONDS)
            self.rack.until(lambda: _all_running(self.rack), "every unit Running after it",
                            RECOVERY_SECONDS)  # fmt: skip
        self.only_verified_payloads_booted()
        self.busbar_within_its_rating()
        self.energy_never_decreases()
        self.acknowledged_writes_are_kept()

    def _rollout_ended(self) -> bool:
        assert self.rollout is not None
        phase = self.rack.get("rollouts", self.rollout)["status"].get("phase")
        assert phase != "Failed", f"rollout {self.rollout} Failed"
        return phase in ("Complete", "RolledBack")

    # -- helpers ------------------------------------------------------------------------

    def _next(self) -> int:
        """A number for a name: unique across this run's sequences (they share the rack)."""
        RackChaos.names += 1
        self.step += 1
        return RackChaos.names

    def _write(self) -> None:
        """One more acknowledged write: an annotation on the Rack."""
        key, value = f"chaos.racklet.dev/w-{os.getpid()}-{self._next()}", str(time.time())
        response = self.rack.request(
            "PATCH", "/api/v1/racks/rack-1", json={"metadata": {"annotations": {key: value}}}
        )
        assert response.status_code == 200, response.text
        self.writes[key] = value

    def _fault_phase(self, name: str, phases: tuple[str, ...]) -> str:
        deadline = time.monotonic() + FAULT_START_SECONDS
        while True:
            status = self.rack.get("faults", name).get("status") or {}
            phase = str(status.get("phase", "Pending"))
            if phase in phases:
                if phase == "Failed":  # a refusal says why
                    assert status.get("message"), status
                return phase
            assert time.monotonic() < deadline, f"fault {name} stuck {phase}"
            time.sleep(0.1)

    def _clear(self, name: str) -> None:
        response = self.rack.request(
            "PATCH", f"/api/v1/faults/{name}", json={"spec": {"cleared": True}}
        )
        assert response.status_code == 200, response.text
        self._fault_phase(name, ("Cleared",))
        del self.faults[name]

    def _roll_out(self, version: str) -> str:
        build = self.rack.config.layout.root.parent / f"build-{version}"
        build.mkdir(exist_ok=True)
        (build / "payload.bin").write_bytes(build_default_payload(65536, version))
        subprocess.run(
            [sys.executable, "-m", "racklet.cli", "--config", str(self.rack.config.layout.config),
             "release", "publish", "--name", "racklet-os", "--version", version,
             str(build / "payload.bin")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        name = f"to-{version.replace('.', '-')}"
        spec = {"release": f"racklet-os-{version.replace('.', '-')}", "canary": 1,
                "batchSize": 1, "maxUnavailable": 1, "healthDeadlineSeconds": 60}  # fmt: skip
        body = {"apiVersion": "racklet.dev/v1alpha1", "kind": "Rollout",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip
        response = self.rack.request("POST", "/api/v1/rollouts", json=body)
        assert response.status_code == 201, response.text
        self.objects.append(("rollouts", name))
        return name

    def _settle(self, what: str) -> None:
        """Let the rack react for a moment of wall time (many simulated seconds)."""
        if VERBOSE:
            print(f"chaos step {self.step}: {what}; phases {self.rack.phases()}", flush=True)
        time.sleep(SETTLE_SECONDS)


def test_the_rack_keeps_its_promises_under_chaos(chaos_rack: ChaosRack) -> None:
    RackChaos.rack = chaos_rack
    run_state_machine_as_test(
        RackChaos,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            derandomize=not RANDOM,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            # A shrink reruns sequences on a live rack, minutes each: only when asked.
            phases=[Phase.generate, Phase.shrink]
            if os.environ.get("CHAOS_SHRINK")
            else [Phase.generate],
            print_blob=True,
            verbosity=Verbosity.verbose if VERBOSE else Verbosity.normal,
        ),
    )
