"""Unit identities and BMC HTTPS certificates, issued and renewed through the BMCs' Redfish.

The keys live in the BMCs; the controller holds only the rack CA. For every ComputeUnit,
each round reads the certificate the BMC reports (``ValidNotAfter``) for two slots — the
unit's identity and the BMC's HTTPS certificate — and when one is missing, was issued by
another CA (a factory reset) or has used two thirds of its lifetime, it asks the BMC for a
CSR (``CertificateService.GenerateCSR``), signs it with the rack CA (short-lived: a week by
default) and installs the result (``ReplaceCertificate``). Usages, names, the role (SPIFFE ID
``unit/<unit>`` or ``bmc/<unit>``) and lifetime are the CA's decision, never taken over from the
request; a CSR naming anyone but the holder asked for is refused (``CertificateRefused``: a
BMC asking for ``racklet-controller`` is lying). A certificate without its role (made before
roles) is re-issued at once.

Each outcome is an event on the ComputeUnit (``IdentityIssued``, ``IdentityRenewed``,
``IdentityRenewFailed``; ``BmcCertificate...`` for HTTPS) and a condition per slot
(``IdentityCertificate``, ``BmcCertificate``: True with its expiry, or False with the reason).
Each certificate signed is also recorded in ``pki/issued/<CN>.pem``, named by the
certificate's own subject (public; for ``racklet pki``).
Enrolment: certifying a BMC that holds no identity of this rack ("missing" or "foreign": a
new board, a first boot, a factory reset) follows the unit's Rack's ``spec.autoEnroll``. When
it is false the board waits with condition ``Enrolled=False`` (``AwaitingApproval``) until
``racklet slot approve N`` sets :data:`~racklet.api.ENROLL_APPROVED_ANNOTATION` on the unit;
the approval is used once: removed when the board has its certificates (``Enrolled=True``,
``Approved``). Renewals never wait.

The RMC's HTTPS certificate is renewed the same way, through the RMC's CertificateService
(the BMC's code; the controller's certificate is ``RackController`` there too), when the rack
has an RMC: role ``rmc``, event ``RmcCertificate...`` and condition ``RmcCertificate`` on the
Rack. It never waits for enrolment: ``racklet up`` prepared the RMC with the rack CA.

After a long stop. A rack stopped for longer than these certificates live (a week) comes back
with every BMC serving an expired HTTPS certificate, and the controller's pinned mutual TLS
refuses it: no round could renew it. So when the certificate this controller last signed for a
BMC (or the RMC) has expired — its record in ``pki/issued`` says so — the round reaches that
service through :meth:`RedfishClient.past_expiry <racklet.redfish.RedfishClient.past_expiry>`:
the validity dates are not checked, but the chain to the rack CA, the role identity and the
public key must be exactly those of the recorded certificate. The key is one this controller
certified; a service that holds another key is refused as before and needs re-enrolment
(docs/security.md, "Certificates that expired while the rack was stopped").

At once, not at the next round. A round comes every ``interval_seconds`` (a minute), but a
new board should not wait for it: whoever sees evidence of a new or reset board — the unit
reconciler's look (a board inserted, a ComputeUnit never looked at, its BMC's certificate
refused, an approval waiting: :func:`~racklet.controller.reconcilers._units.board_evidence`),
a BMC's event stream opening again after it dropped (the BMC came back) — calls
:meth:`UnitCertificates.wake`, and a round of just the units named runs within
``wake_gap_seconds`` (at once when the chore was quiet; :class:`Periodic`'s woken rounds).
What a board can make of that: a woken round per ``wake_gap_seconds`` at most, reading the
certificates of the units named since the last round (each named unit once, and only units
of this rack's config), so a device that keeps failing TLS or flapping its presence costs the
controller one unit's reads every few seconds. It gains nothing else: what is signed, and
for whom, is decided as in any round (the CA's names, ``autoEnroll``, approvals).

Only the leader runs it (a leader-only service), through the fenced store. A revoked certificate
(``racklet pki revoke``) is replaced at the next round with a fresh key: revoking a unit's
identity rotates it (docs/security.md); the CRL keeps the old one refused everywhere.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Collection, Container, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from racklet.api import (
    ENROLL_APPROVED_ANNOTATION,
    ComputeUnit,
    Event,
    Rack,
    find_condition,
    rack_of,
    set_condition,
)
from racklet.config import write_atomic
from racklet.controller._periodic import LoopObserver, Periodic
from racklet.log import get_logger
from racklet.pki import CsrRefused, PkiError, RackCA, revoked_serials, role_uri
from racklet.redfish import RedfishClient, RedfishClientError
from racklet.store import Conflict, NotFound, Store, StoreError

log = get_logger("controller")
MANAGER = "/redfish/v1/Managers/bmc"
RMC_MANAGER = "/redfish/v1/Managers/rmc"
ISSUED = "issued"
"""``pki/issued/<CN>.pem``: the last certificate signed for each BMC-held key (public), for
``racklet pki revoke`` to name (``.pem``, not ``.crt``: the BMC reports its expiry, not a file
inventory that would flag every week-long certificate as expiring)."""


class CertificateBmc(Protocol):
    """What this task needs of a BMC's Redfish client."""

    base_url: str

    async def certificate(self, uri: str) -> dict[str, Any] | None: ...

    async def generate_csr(
        self, collection: str, common_name: str, alternative_names: tuple[str, ...] = ()
    ) -> str: ...

    async def replace_certificate(self, uri: str, certificate_pem: str) -> None: ...


@dataclass(frozen=True)
class CertificatePolicy:
    days: int = 7
    """Lifetime of each certificate issued (at least a day: the CA's floor)."""
    renew_after: float = 2 / 3
    """Renew once this fraction of the lifetime has passed."""
    interval_seconds: float = 60.0
    """Between rounds when all is well."""
    retry_seconds: float = 5.0
    """Between rounds while some unit's certificate is missing or failed."""
    wake_gap_seconds: float = 5.0
    """The least time from one round's start to a woken round's (:meth:`UnitCertificates.wake`):
    the rate limit on rounds that evidence from the units can bring."""
    identity_sans: tuple[str, ...] = ("127.0.0.1", "localhost")
    """Names in a unit identity (its OS agent serves TLS with it on the unit)."""


@dataclass(frozen=True)
class _Slot:
    label: str  # event reason prefix
    condition: str
    collection: str
    common_name: str
    role: str
    server: bool
    client: bool
    sans: tuple[str, ...]

    @property
    def uri(self) -> str:
        return f"{self.collection}/1"


def _slots(unit: str, bmc: CertificateBmc, policy: CertificatePolicy) -> tuple[_Slot, ...]:
    host = urlsplit(bmc.base_url).hostname or "localhost"
    return (
        _Slot(
            "Identity",
            "IdentityCertificate",
            f"/redfish/v1/Systems/{unit}/Certificates",
            unit,
            f"unit/{unit}",
            True,
            True,
            policy.identity_sans,
        ),
        _Slot(
            "BmcCertificate",
            "BmcCertificate",
            f"{MANAGER}/NetworkProtocol/HTTPS/Certificates",
            f"{unit}-bmc",
            f"bmc/{unit}",
            True,
            False,
            (host,),
        ),
    )


def _rmc_slot(rmc: CertificateBmc) -> _Slot:
    host = urlsplit(rmc.base_url).hostname or "localhost"
    collection = f"{RMC_MANAGER}/NetworkProtocol/HTTPS/Certificates"
    return _Slot("RmcCertificate", "RmcCertificate", collection, "rmc", "rmc", True, False, (host,))


def _until(body: dict[str, Any]) -> str:
    """The condition message of a certificate in order (as after its renewal): its expiry."""
    cert = x509.load_pem_x509_certificate(str(body["CertificateString"]).encode())
    return f"valid until {cert.not_valid_after_utc.isoformat(timespec='seconds')}"


def _subject(pem: bytes) -> str:
    """The common name the certificate itself certifies (what its record is named by)."""
    cert = x509.load_pem_x509_certificate(pem)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _due(
    body: dict[str, Any] | None,
    ca: RackCA,
    slot: _Slot,
    now: dt.datetime,
    renew_after: float,
    revoked: Container[int] = (),
) -> str | None:
    """Why the certificate needs (re)issuing — "missing", "foreign", "outdated" (no or another
    role identity: made before roles), "revoked" (a revocation is a rotation: a fresh key,
    certified at once), "due" — or None."""
    if body is None or not isinstance(body.get("CertificateString"), str):
        return "missing"
    try:
        cert = x509.load_pem_x509_certificate(str(body["CertificateString"]).encode())
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return "foreign"
    if role_uri(cert) != ca.spiffe_id(slot.role):
        return "outdated"
    if cert.serial_number in revoked:
        return "revoked"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return "due" if now >= cert.not_valid_before_utc + lifetime * renew_after else None


class UnitCertificates:
    """The periodic, owned task that keeps every unit's certificates issued and fresh."""

    def __init__(
        self,
        store: Store,
        bmcs: Mapping[str, CertificateBmc],
        pki_dir: Path,
        *,
        policy: CertificatePolicy | None = None,
        observer: LoopObserver | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        rmc: tuple[str, CertificateBmc] | None = None,
    ) -> None:
        """``rmc``: the rack's name and its RMC's client, when the rack has an RMC."""
        self._store = store
        self._bmcs = bmcs
        self._rmc = rmc
        self._pki_dir = pki_dir
        self.policy = policy or CertificatePolicy()
        self._now = now
        self._asked: set[str] = set()
        """Units named by :meth:`wake` since the last round began."""
        self._loop = Periodic(
            "unit-certificates",
            self._round,
            interval=self.policy.interval_seconds,
            retry=self.policy.retry_seconds,
            observer=observer,
            woken=self._woken_round,
            wake_gap=self.policy.wake_gap_seconds,
        )

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def wake(self, unit: str) -> None:
        """Evidence that ``unit``'s board may hold no identity of this rack (a new or reset
        board): its certificates are seen to in a round of their own, soon (the module
        docstring says how soon, and what a board can make of it). A unit this controller
        has no BMC for is ignored."""
        if unit in self._bmcs:
            self._asked.add(unit)
            self._loop.wake()

    async def _round(self) -> bool:
        self._asked.clear()  # every unit is looked at in this round
        return await self._guarded(self.run_once())

    async def _woken_round(self) -> bool:
        asked, self._asked = self._asked, set()
        return await self._guarded(self.run_once(only=asked)) if asked else True

    async def _guarded(self, work: Awaitable[bool]) -> bool:
        try:
            return await work
        except (PkiError, OSError) as exc:
            log.warning("unit certificates: cannot use the rack CA: %s", exc)
        except StoreError as exc:  # the store is down, or this controller was deposed
            log.warning("unit certificates: store: %s", exc)
        return False

    async def run_once(self, only: Collection[str] | None = None) -> bool:
        """One round over every ComputeUnit (or those named in ``only``, without the RMC);
        whether every certificate it looked at is now in order."""
        ca = await asyncio.to_thread(RackCA.load, self._pki_dir)
        revoked = set(await asyncio.to_thread(revoked_serials, self._pki_dir))
        if only is None:
            units = [u.metadata.name for u in await self._store.list(ComputeUnit)]
        else:  # the units named, each read alone: a woken round costs what it was woken for
            units = [name for name in sorted(only) if await self._declared(name)]
        work = [
            self._unit(name, bmc, ca, revoked) for name in units if (bmc := self._bmcs.get(name))
        ]
        if self._rmc is not None and only is None:
            work.append(self._rack_rmc(*self._rmc, ca, revoked))
        return all(await asyncio.gather(*work))

    async def _declared(self, name: str) -> bool:
        try:
            await self._store.get(ComputeUnit, name)
        except NotFound:
            return False
        return True

    async def _rack_rmc(
        self, rack: str, rmc: CertificateBmc, ca: RackCA, revoked: set[int]
    ) -> bool:
        reached, opened = await self._reach(rmc, _rmc_slot(rmc).common_name, revoked)
        try:
            slot = _rmc_slot(reached)
            return await self._slot(_Target(Rack, rack), reached, ca, slot, revoked, _NoEnrolment())
        finally:
            if opened is not None:
                await opened.aclose()

    async def _reach(
        self, service: CertificateBmc, holder: str, revoked: Container[int]
    ) -> tuple[CertificateBmc, RedfishClient | None]:
        """``service``, or, when the HTTPS certificate this controller last signed for
        ``holder`` has expired (and was not revoked), a client that accepts it past its
        expiry for its recorded key only (the module docstring says why). The second item is
        that client, to close."""
        if not isinstance(service, RedfishClient):
            return service, None
        record = self._pki_dir / ISSUED / f"{holder}.pem"
        try:
            cert = x509.load_pem_x509_certificate(await asyncio.to_thread(record.read_bytes))
        except (OSError, ValueError):
            return service, None  # never certified here: nothing known to accept
        if self._now() < cert.not_valid_after_utc or cert.serial_number in revoked:
            return service, None  # in date, or its key is revoked: no exception for it
        key = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        log.warning(
            "%s: its certificate expired at %s; reaching it by the key certified then",
            holder,
            cert.not_valid_after_utc.isoformat(timespec="seconds"),
        )
        try:
            recovery = service.past_expiry(key)
        except RedfishClientError:  # pinned to no role: an expired peer is not accepted
            return service, None
        return recovery, recovery

    async def _unit(self, name: str, bmc: CertificateBmc, ca: RackCA, revoked: set[int]) -> bool:
        reached, opened = await self._reach(bmc, f"{name}-bmc", revoked)
        try:
            return await self._unit_slots(name, reached, ca, revoked)
        finally:
            if opened is not None:
                await opened.aclose()

    async def _unit_slots(
        self, name: str, bmc: CertificateBmc, ca: RackCA, revoked: set[int]
    ) -> bool:
        ok = True
        enrolment = _Enrolment(self._store, name)
        target = _Target(ComputeUnit, name)
        for slot in _slots(name, bmc, self.policy):
            ok = await self._slot(target, bmc, ca, slot, revoked, enrolment) and ok
        if enrolment.waiting:
            message = (
                f"the board in slot {enrolment.slot} holds no identity of this rack and the "
                f"rack's autoEnroll is off: `racklet slot approve {enrolment.slot}` enrols it"
            )
            await self._condition(target, "Enrolled", False, "AwaitingApproval", message)
        elif ok and enrolment.approved and enrolment.used:
            await self._consume_approval(name)
            await self._condition(target, "Enrolled", True, "Approved", "enrolled on approval")
        return ok

    async def _slot(
        self,
        target: _Target,
        bmc: CertificateBmc,
        ca: RackCA,
        slot: _Slot,
        revoked: set[int],
        enrolment: _Enrolment | _NoEnrolment,
    ) -> bool:
        name = target.name
        try:
            current = await bmc.certificate(slot.uri)
            reason = _due(current, ca, slot, self._now(), self.policy.renew_after, revoked)
            if reason is None:
                assert current is not None  # a certificate is due unless it is there
                await self._condition(target, slot.condition, True, "Valid", _until(current))
                return True
            if reason in ("missing", "foreign") and not await enrolment.allow():
                message = "none: the board awaits enrolment (condition Enrolled)"
                await self._condition(target, slot.condition, False, "AwaitingApproval", message)
                return False  # a new board: it waits for approval
            csr = await bmc.generate_csr(slot.collection, slot.common_name)
            pem = await asyncio.to_thread(
                ca.sign_csr,
                csr.encode(),
                common_name=slot.common_name,
                role=slot.role,
                asked_sans=(),
                server=slot.server,
                client=slot.client,
                sans=slot.sans,
                days=self.policy.days,
            )
            await bmc.replace_certificate(slot.uri, pem.decode())
            record = self._pki_dir / ISSUED / f"{_subject(pem)}.pem"
            await asyncio.to_thread(write_atomic, record, pem)
        except CsrRefused as exc:
            message = (
                f"{name}: the BMC's request for the {slot.label.lower()} certificate names "
                f"{exc.got!r}, not {exc.asked!r} as asked; nothing was signed"
            )
            log.bind(unit=name).warning(
                "certificate request refused: asked %r, the CSR names %r", exc.asked, exc.got
            )
            await self._record(
                target, slot, False, "CertificateRefused", message, "Refused", "Certificate"
            )
            return False
        except (RedfishClientError, PkiError, OSError) as exc:
            message = f"{slot.common_name}: {exc}"
            log.warning("certificate of %s not renewed: %s", slot.common_name, exc)
            await self._record(target, slot, False, "RenewFailed", message, "RenewFailed")
            return False
        until = _until({"CertificateString": pem.decode()})
        verb = "Renewed" if reason == "due" else "Issued"
        log.info("%s certificate of %s %s (%s)", slot.label, name, verb.lower(), until)
        await self._record(target, slot, True, "Valid", until, verb)
        return True

    async def _record(
        self,
        target: _Target,
        slot: _Slot,
        ok: bool,
        reason: str,
        message: str,
        outcome: str,
        label: str | None = None,
    ) -> None:
        """The event (``<label><outcome>``, the slot's label by default), and the slot's
        condition on the target (retried on a conflict)."""
        kind: Literal["Normal", "Warning"] = "Normal" if ok else "Warning"
        reason_of_event = f"{slot.label if label is None else label}{outcome}"
        event = Event.about(target.kind.__name__, target.name, reason_of_event, message, kind)
        await self._store.record_event(event)
        await self._condition(target, slot.condition, ok, reason, message)

    async def _condition(
        self, target: _Target, type_: str, ok: bool, reason: str, message: str
    ) -> None:
        """Set one condition on the target, if it changed (retried on a conflict)."""
        for _ in range(5):
            try:
                unit = await self._store.get(target.kind, target.name)
            except NotFound:
                return
            condition = find_condition(unit.status.conditions, type_)
            if condition is not None and (condition.status, condition.message) == (
                "True" if ok else "False",
                message,
            ):
                return
            set_condition(unit.status.conditions, type_, "True" if ok else "False", reason, message)
            try:
                await self._store.update_status(unit)
                return
            except Conflict:
                continue

    async def _consume_approval(self, name: str) -> None:
        """An approval enrols one board: gone once it has (a later new board asks again)."""
        for _ in range(5):
            try:
                unit = await self._store.get(ComputeUnit, name)
            except NotFound:
                return
            if unit.metadata.annotations.pop(ENROLL_APPROVED_ANNOTATION, None) is None:
                return
            try:
                await self._store.update(unit)
                return
            except Conflict:
                continue


@dataclass(frozen=True)
class _Target:
    """What a slot's events and condition are about: a ComputeUnit, or the Rack (its RMC)."""

    kind: type[ComputeUnit] | type[Rack]
    name: str


class _NoEnrolment:
    """The RMC's certificate: ``racklet up`` prepared it with the rack CA, so a missing or
    foreign one is issued at once (there is no new board to approve)."""

    waiting = False

    async def allow(self) -> bool:
        return True


class _Enrolment:
    """Whether one round may enrol a unit's board, asked only when a slot needs it: approved
    on the unit, or the unit's Rack (its label's, else the only one) enrols automatically."""

    def __init__(self, store: Store, name: str) -> None:
        self._store, self._name = store, name
        self.allowed: bool | None = None
        self.approved = False
        self.used = False
        self.slot = 0

    @property
    def waiting(self) -> bool:
        return self.allowed is False

    async def allow(self) -> bool:
        if self.allowed is None:
            unit = await self._store.get(ComputeUnit, self._name)
            self.slot = unit.spec.slot
            self.approved = ENROLL_APPROVED_ANNOTATION in unit.metadata.annotations
            self.allowed = self.approved or await self._automatic(unit)
        self.used = self.used or self.allowed
        return self.allowed

    async def _automatic(self, unit: ComputeUnit) -> bool:
        racks = await self._store.list(Rack)
        home = rack_of(unit, None)
        rack = next((r for r in racks if r.metadata.name == home), None)
        if rack is None and len(racks) == 1:
            rack = racks[0]
        return True if rack is None else rack.spec.auto_enroll
