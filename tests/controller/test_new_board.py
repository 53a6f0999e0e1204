"""A new board is seen to at once: enrolled, or shown awaiting approval, within moments of the
controller seeing it — not at the certificate chore's next round, a minute later.

A real BMC service over TLS on a fake board (its presence switch is the slot), the real unit
reconciler and the real certificate chore, wired as the controller wires them (the
reconciler's ``new_board`` is the chore's ``wake``). The chore's interval is an hour here, so
only a wake can show anything; every wait is on a condition, bounded.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from racklet.api import (
    ENROLL_APPROVED_ANNOTATION,
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ComputeUnitStatus,
    Condition,
    ObjectMeta,
    Rack,
    RackSpec,
    find_condition,
)
from racklet.controller import ComputeUnitReconciler, HeartbeatRegistry
from racklet.controller._certificates import CertificatePolicy, UnitCertificates
from racklet.controller._phase import Observation
from racklet.controller.reconcilers._units import board_evidence
from racklet.pki import RackCA
from racklet.redfish import ChassisView, RedfishClient, SystemView
from racklet.store import Conflict, SqliteStore
from tests.bmc.conftest import ADMIN, UNIT, FastClock, eventually, running_bench

IDENTITY = f"/redfish/v1/Systems/{UNIT}/Certificates/1"
HOUR = CertificatePolicy(interval_seconds=3600.0, retry_seconds=3600.0, wake_gap_seconds=0.2)


class Rounds:
    """The chore's rounds by label (``unit-certificates``, ``unit-certificates:woken``)."""

    def __init__(self) -> None:
        self.finished: list[str] = []

    def loop_finished(self, loop: str, seconds: float, ok: bool) -> None:
        self.finished.append(loop)


async def _enrolled(store: SqliteStore) -> tuple[str, str] | None:
    unit = await store.get(ComputeUnit, UNIT)
    condition = find_condition(unit.status.conditions, "Enrolled")
    return None if condition is None else (condition.status, condition.reason)


async def _reconcile(reconciler: ComputeUnitReconciler) -> None:
    """One run of the reconciler, as the runtime runs it: again on a write conflict (the
    certificate chore writes its conditions on the same ComputeUnit meanwhile)."""
    for _ in range(10):
        try:
            await reconciler.reconcile(UNIT)
            return
        except Conflict:
            continue
    raise AssertionError("ten conflicts in a row")


def _unit(name: str, slot: int, url: str) -> ComputeUnit:
    spec = ComputeUnitSpec(slot=slot, power="Off", bmc=BmcRef(url=url))
    return ComputeUnit(metadata=ObjectMeta(name=name), spec=spec)


async def test_a_new_board_in_a_slot_awaits_approval_at_once_and_is_enrolled_on_it(
    tmp_path: Path,
) -> None:
    async with running_bench(tmp_path, FastClock(speed=50.0)) as bench:
        store = SqliteStore(tmp_path / "store.db")
        rack = Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psuRatedWatts=50))
        await store.create(rack)
        await store.create(_unit(UNIT, 1, bench.url))
        client = RedfishClient(bench.url, *ADMIN, ca_bundle=bench.ca)
        chore = UnitCertificates(store, {UNIT: client}, tmp_path / "pki", policy=HOUR)
        reconciler = ComputeUnitReconciler(
            store, {UNIT: client}, HeartbeatRegistry(), rack_name="rack-1", new_board=chore.wake
        )
        await chore.start()
        try:
            await _reconcile(reconciler)
            await eventually(
                lambda: _condition_is(store, "IdentityCertificate", "True"), "the first round"
            )
            rack = await store.get(Rack, "rack-1")
            rack.spec.auto_enroll = False
            await store.update(rack)

            bench.unit.present = False  # pulled ...
            await _reconcile(reconciler)
            assert (await store.get(ComputeUnit, UNIT)).status.phase == "Absent"
            for name in ("identity.key", "identity.crt", "certificates/identity.pem"):
                (bench.state_dir / name).unlink(missing_ok=True)  # ... a new board: no identity
            bench.unit.present = True  # inserted
            await _reconcile(reconciler)

            async def awaiting() -> bool:
                return await _enrolled(store) == ("False", "AwaitingApproval")

            await eventually(awaiting, "Enrolled=False without waiting the hour", 20)
            assert await client.certificate(IDENTITY) is None  # nothing signed for it

            unit = await store.get(ComputeUnit, UNIT)
            unit.metadata.annotations[ENROLL_APPROVED_ANNOTATION] = "2026-12-07T21:00:00+00:00"
            await store.update(unit)  # `racklet slot approve 1`; the informer runs the reconciler
            await _reconcile(reconciler)

            async def approved() -> bool:
                return await _enrolled(store) == ("True", "Approved")

            await eventually(approved, "the approved board enrolled without waiting", 20)
            assert await client.certificate(IDENTITY) is not None
        finally:
            await chore.stop()
            await client.aclose()
            await store.close()


async def _condition_is(store: SqliteStore, kind: str, status: str) -> bool:
    unit = await store.get(ComputeUnit, UNIT)
    condition = find_condition(unit.status.conditions, kind)
    return condition is not None and condition.status == status


async def test_a_woken_round_reads_only_the_units_it_was_woken_for(tmp_path: Path) -> None:
    """What evidence from one board costs: its own unit's reads, not the rack's."""
    async with running_bench(tmp_path, FastClock(speed=50.0)) as bench:
        store = SqliteStore(tmp_path / "store.db")
        await store.create(_unit(UNIT, 1, bench.url))
        client = RedfishClient(bench.url, *ADMIN, ca_bundle=bench.ca)
        # unit-2's BMC does not answer: a round that looked at it would say so on unit-2
        elsewhere = RedfishClient("https://127.0.0.1:9", *ADMIN, ca_bundle=bench.ca, timeout=1)
        rounds = Rounds()
        bmcs = {UNIT: client, "unit-2": elsewhere}
        chore = UnitCertificates(store, bmcs, tmp_path / "pki", policy=HOUR, observer=rounds)
        await chore.start()
        try:
            await eventually(lambda: rounds.finished == ["unit-certificates"], "the first round")
            await store.create(_unit("unit-2", 2, "https://127.0.0.1:9"))
            chore.wake("unit-9")  # no such unit here: ignored
            chore.wake(UNIT)
            await eventually(lambda: "unit-certificates:woken" in rounds.finished, "a woken round")
        finally:
            await chore.stop()
            await client.aclose()
            await elsewhere.aclose()
        assert rounds.finished == ["unit-certificates", "unit-certificates:woken"]
        assert not (await store.get(ComputeUnit, "unit-2")).status.conditions
        assert not await store.events("unit-2", kind="ComputeUnit")
        await store.close()


async def test_a_bmc_whose_certificate_is_refused_is_named_and_its_certificates_seen_to(
    tmp_path: Path,
) -> None:
    """The look reaches a board that is not the one pinned for the slot (here unit-1's BMC
    where unit-2's should be): the unit is Unreachable for that reason, and the certificate
    chore is told (a BMC certificate that expired over a long stop is renewed that way)."""
    async with running_bench(tmp_path, FastClock(speed=50.0)) as bench:
        store = SqliteStore(tmp_path / "store.db")
        await store.create(_unit("unit-2", 2, bench.url))
        ca = RackCA.load(tmp_path / "pki")
        pinned = RedfishClient(
            bench.url, *ADMIN, ca_bundle=bench.ca, expect=ca.spiffe_id("bmc/unit-2")
        )
        told: list[str] = []
        bmcs = {"unit-2": pinned}
        reconciler = ComputeUnitReconciler(
            store, bmcs, HeartbeatRegistry(), rack_name="rack-1", new_board=told.append
        )
        try:
            await reconciler.reconcile("unit-2")
            unit = await store.get(ComputeUnit, "unit-2")
        finally:
            await pinned.aclose()
            await store.close()
    ready = find_condition(unit.status.conditions, "Ready")
    assert unit.status.phase == "Unreachable"
    assert ready is not None and ready.reason == "BmcCertificateRefused"
    assert told == ["unit-2"]


def _seen(phase: str, *, approved: bool = False, enrolled: str | None = None) -> ComputeUnit:
    unit = _unit(UNIT, 1, "https://bmc.test")
    unit.status = ComputeUnitStatus(phase=phase)  # type: ignore[arg-type]
    if approved:
        unit.metadata.annotations[ENROLL_APPROVED_ANNOTATION] = "2026-12-07T21:00:00+00:00"
    if enrolled is not None:
        now = dt.datetime.now(dt.UTC)
        unit.status.conditions.append(
            Condition(type="Enrolled", status=enrolled, reason="R", last_transition_time=now)  # type: ignore[arg-type]
        )
    return unit


def _looked(*, absent: bool = False) -> Observation:
    return Observation(
        chassis=ChassisView(state="Absent" if absent else "Enabled", max_power_watts=6.0),
        system=SystemView("Off", "None", None, "Enabled", "OK", ()),
    )


@pytest.mark.parametrize(
    ("unit", "obs", "evidence"),
    [
        (_seen("Running"), Observation(error="x: certificate revoked", untrusted=True), True),
        (_seen("Running"), Observation(error="x: ConnectError: refused"), False),  # an outage
        (_seen("Unknown"), _looked(), True),  # a ComputeUnit just created
        (_seen("Absent"), _looked(), True),  # a board inserted
        (_seen("Absent"), _looked(absent=True), False),  # still empty
        (_seen("Off"), _looked(), False),  # nothing new
        (_seen("Off", approved=True, enrolled="False"), _looked(), True),  # approved: go
        (_seen("Off", approved=True, enrolled="True"), _looked(), False),  # approval used
    ],
)
def test_what_a_look_counts_as_evidence_of_a_new_board(
    unit: ComputeUnit, obs: Observation, evidence: bool
) -> None:
    assert (board_evidence(unit, obs) is not None) is evidence
