"""The controller keeps unit identities and BMC HTTPS certificates issued and fresh, through
a real BMC's CertificateService over TLS, with the rack CA's signatures.

Renewal is driven by the task's clock (``now``), moved forward by the test: no waiting for
real expiry, and every wait is a poll with a bounded deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from racklet.api import (
    ENROLL_APPROVED_ANNOTATION,
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ObjectMeta,
    Rack,
    RackSpec,
    find_condition,
)
from racklet.bmc._state.certificates import CertSlot
from racklet.controller._certificates import CertificatePolicy, UnitCertificates
from racklet.pki import RackCA, revoke
from racklet.redfish import RedfishClient
from racklet.store import SqliteStore
from tests.bmc.conftest import ADMIN, UNIT
from tests.bmc.resources.certificates.test_certificates import (
    CertBench,
    _served_certificate,
    running,
)

IDENTITY = f"/redfish/v1/Systems/{UNIT}/Certificates/1"
HTTPS = "/redfish/v1/Managers/bmc/NetworkProtocol/HTTPS/Certificates/1"


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def _until(check: Callable[[], Awaitable[bool]], what: str, limit: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def rack(tmp_path: Path) -> AsyncIterator[tuple[CertBench, SqliteStore, RedfishClient]]:
    async with running(tmp_path, identity=False) as bench:
        store = SqliteStore(tmp_path / "store.db")
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=UNIT),
                spec=ComputeUnitSpec(slot=1, power="On", bmc=BmcRef(url=bench.url)),
            )
        )
        client = RedfishClient(bench.url, *ADMIN, ca_bundle=bench.ca_path)
        try:
            yield bench, store, client
        finally:
            await client.aclose()
            await store.close()


async def _reasons(store: SqliteStore) -> list[str]:
    return [e.reason for e in await store.events(UNIT, limit=1000, kind="ComputeUnit")]


async def _serial(client: RedfishClient, uri: str) -> str:
    body = await client.certificate(uri)
    return "" if body is None else str(body["SerialNumber"])


async def test_a_new_unit_gets_a_short_lived_identity_from_its_bmcs_key(
    rack: tuple[CertBench, SqliteStore, RedfishClient], tmp_path: Path
) -> None:
    bench, store, client = rack
    assert await client.certificate(IDENTITY) is None
    task = UnitCertificates(store, {UNIT: client}, tmp_path / "pki")
    assert await task.run_once()
    body = await client.certificate(IDENTITY)
    assert body is not None
    cert = x509.load_pem_x509_certificate(body["CertificateString"].encode())
    cert.verify_directly_issued_by(bench.ca.cert)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc < dt.timedelta(days=8)
    assert "IdentityIssued" in await _reasons(store)
    unit = await store.get(ComputeUnit, UNIT)
    condition = find_condition(unit.status.conditions, "IdentityCertificate")
    assert condition is not None and condition.status == "True"
    assert cert.not_valid_after_utc.isoformat(timespec="seconds") in condition.message
    # The controller keeps the (public) certificate it signed, never a key for the unit.
    assert (tmp_path / "pki" / "issued" / f"{UNIT}.pem").read_bytes() == body[
        "CertificateString"
    ].encode()
    assert not [p for p in (tmp_path / "pki").rglob("*.key") if p.name != "ca.key"]


async def test_the_running_task_renews_what_nears_expiry(
    rack: tuple[CertBench, SqliteStore, RedfishClient], tmp_path: Path
) -> None:
    bench, store, client = rack
    clock = Clock()
    task = UnitCertificates(
        store,
        {UNIT: client},
        tmp_path / "pki",
        policy=CertificatePolicy(days=7, interval_seconds=0.05, retry_seconds=0.05),
        now=clock,
    )
    await task.start()
    try:
        await _until(lambda: _has(client, IDENTITY), "the first identity")
        first = await _serial(client, IDENTITY)
        https_before = await _serial(client, HTTPS)
        clock.now += dt.timedelta(days=4)  # under two thirds of 7 days: nothing to do
        assert await task.run_once()
        assert await _serial(client, IDENTITY) == first
        clock.now += dt.timedelta(days=1)  # 5 of 7 days
        await _until(lambda: _differs(client, IDENTITY, first), "the identity's renewal")
        clock.now = dt.datetime.now(dt.UTC)
        assert await _serial(client, HTTPS) == https_before  # 90-day bootstrap: not yet due
        # The CA dates what it signs by the real clock: come back to it before moving on.
        clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(days=70)
        await _until(lambda: _differs(client, HTTPS, https_before), "the HTTPS renewal")
        await _until(lambda: _recorded(store, "BmcCertificateRenewed"), "the renewal's event")
    finally:
        await task.stop()
    served = await _served_certificate(bench)
    octets = served.serial_number.to_bytes((served.serial_number.bit_length() + 7) // 8, "big")
    assert (await _serial(client, HTTPS)).replace(":", "").lower() == octets.hex()
    reasons = await _reasons(store)
    assert {"IdentityIssued", "IdentityRenewed", "BmcCertificateRenewed"} <= set(reasons)


async def _recorded(store: SqliteStore, reason: str) -> bool:
    return reason in await _reasons(store)


async def _has(client: RedfishClient, uri: str) -> bool:
    return await client.certificate(uri) is not None


async def _differs(client: RedfishClient, uri: str, serial: str) -> bool:
    return await _serial(client, uri) not in ("", serial)


async def test_a_bmc_that_refuses_the_certificate_is_a_condition_and_an_event(
    rack: tuple[CertBench, SqliteStore, RedfishClient], tmp_path: Path
) -> None:
    bench, store, client = rack
    foreign = RackCA.create(tmp_path / "elsewhere", rack="elsewhere")
    trust = json.loads((bench.state_dir / "trust.json").read_text())
    trust["caBundle"] = foreign.cert_pem.decode()  # this BMC trusts another rack's CA
    (bench.state_dir / "trust.json").write_text(json.dumps(trust))
    task = UnitCertificates(store, {UNIT: client}, tmp_path / "pki")
    assert not await task.run_once()
    assert await client.certificate(IDENTITY) is None
    assert "IdentityRenewFailed" in await _reasons(store)
    unit = await store.get(ComputeUnit, UNIT)
    condition = find_condition(unit.status.conditions, "IdentityCertificate")
    assert condition is not None and condition.status == "False"
    assert condition.reason == "RenewFailed"
    assert "rack CA" in condition.message


async def test_a_bmc_asking_for_the_controllers_name_gets_nothing(
    rack: tuple[CertBench, SqliteStore, RedfishClient], tmp_path: Path
) -> None:
    """A compromised BMC answers GenerateCSR (real Redfish, real key) with a request for
    ``racklet-controller``, hoping for a certificate every BMC would take for the controller."""
    bench, store, client = rack
    certificates = bench.service.certificates
    honest = certificates.generate_csr

    def rogue(slot: CertSlot, alt_names: tuple[str, ...] = ()) -> str:
        return honest(replace(slot, common_name="racklet-controller"), alt_names)

    certificates.generate_csr = rogue  # type: ignore[method-assign]
    task = UnitCertificates(store, {UNIT: client}, tmp_path / "pki")
    assert not await task.run_once()
    assert await client.certificate(IDENTITY) is None  # the unit has no identity
    events = await store.events(UNIT, limit=1000, kind="ComputeUnit")
    refused = [e for e in events if e.reason == "CertificateRefused"]
    assert refused and refused[0].type == "Warning"
    for text in (UNIT, "'racklet-controller'", "not 'unit-1'"):
        assert text in refused[0].message
    unit = await store.get(ComputeUnit, UNIT)
    condition = find_condition(unit.status.conditions, "IdentityCertificate")
    assert condition is not None and condition.status == "False"
    assert condition.reason == "CertificateRefused"
    assert "racklet-controller" in condition.message and UNIT in condition.message
    # Nothing was signed, so nothing is filed under either name.
    assert not list((tmp_path / "pki").glob("issued/*"))


async def test_revoking_a_unit_identity_rotates_it(
    rack: tuple[CertBench, SqliteStore, RedfishClient], tmp_path: Path
) -> None:
    bench, store, client = rack
    task = UnitCertificates(store, {UNIT: client}, tmp_path / "pki")
    assert await task.run_once()
    first = await _serial(client, IDENTITY)
    assert await task.run_once() and await _serial(client, IDENTITY) == first  # nothing due
    revoke(bench.ca, tmp_path / "pki", (tmp_path / "pki" / "issued" / f"{UNIT}.pem").read_bytes())
    assert await task.run_once()
    assert await _serial(client, IDENTITY) not in ("", first)  # a fresh key, certified at once


async def test_with_auto_enroll_off_a_new_board_waits_for_approval_once(
    rack: tuple[CertBench, SqliteStore, RedfishClient], tmp_path: Path
) -> None:
    _, store, client = rack
    await store.create(
        Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psuRatedWatts=50, autoEnroll=False))
    )
    task = UnitCertificates(store, {UNIT: client}, tmp_path / "pki")
    assert not await task.run_once()
    assert await client.certificate(IDENTITY) is None  # nothing signed for it
    unit = await store.get(ComputeUnit, UNIT)
    enrolled = find_condition(unit.status.conditions, "Enrolled")
    assert enrolled is not None and (enrolled.status, enrolled.reason) == (
        "False",
        "AwaitingApproval",
    )
    assert "`racklet slot approve 1` enrols it" in enrolled.message
    identity = find_condition(unit.status.conditions, "IdentityCertificate")
    assert identity is not None and (identity.status, identity.reason) == (
        "False",
        "AwaitingApproval",
    )

    unit.metadata.annotations[ENROLL_APPROVED_ANNOTATION] = "2026-12-07T06:00:00+00:00"
    await store.update(unit)  # what `racklet slot approve 1` writes
    assert await task.run_once()
    assert await client.certificate(IDENTITY) is not None
    unit = await store.get(ComputeUnit, UNIT)
    assert ENROLL_APPROVED_ANNOTATION not in unit.metadata.annotations  # used once
    enrolled = find_condition(unit.status.conditions, "Enrolled")
    assert enrolled is not None and (enrolled.status, enrolled.reason) == ("True", "Approved")
