"""``CertificateService``: the service makes keys, the rack CA certifies them, through Redfish.

One implementation for the BMC and the RMC (exported as :mod:`racklet.bmc.certificates`): the
collections are the slots of the :class:`CertificateStore` it is given. A BMC's two, each
with one member ``1``:

* ``Systems/<unit>/Certificates`` — the unit's identity (ComputerSystem ``Certificates``,
  "certificates for device identity and attestation"; usage ``LDevID``, a locally issued
  device identity). The BMC hands it to the unit over the backplane when the unit boots.
* ``Managers/bmc/NetworkProtocol/HTTPS/Certificates`` — the BMC's own HTTPS certificate, where
  OpenBMC's bmcweb puts it too; a replacement is used by the next TLS handshake.

The RMC's one: ``Managers/rmc/NetworkProtocol/HTTPS/Certificates``, its listener's.

``GenerateCSR`` makes a new EC P-256 key inside the BMC and answers its CSR;
``ReplaceCertificate`` installs the certificate the rack CA signed for it. Both need the OEM
privilege ``RackletConfigureCertificates`` (Administrator, and the controller's certificate:
``racklet.bmc._http.privileges``); reading needs ``Login``. Every refusal is a Base-registry
error body; keys never leave the service (except the unit's own, to its unit, over the
backplane).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from racklet.bmc._http.declared import (
    Declared,
    Resource,
    action_parameters,
    allowable,
    validate_action,
)
from racklet.bmc._http.odata import collection, link, resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import read_object, respond, route
from racklet.bmc._http.uris import CERTIFICATE_SERVICE as SERVICE
from racklet.bmc._state.certificates import CertificateRejected, CertificateStore, CertSlot
from racklet.bmc.errors import StateError
from racklet.log import ContextLogger

GENERATE_CSR = "CertificateService.GenerateCSR"
REPLACE = "CertificateService.ReplaceCertificate"


class TargetLink(Declared):
    odata_id: str = Field(alias="@odata.id")


class GenerateCSRParameters(Declared):
    """What GenerateCSR accepts. The DN details are not used (the CA names the holder), and
    the key is always EC P-256."""

    CertificateCollection: TargetLink
    CommonName: str
    AlternativeNames: list[str] = Field(default_factory=list)
    KeyPairAlgorithm: Literal["TPM_ALG_ECDSA"] | None = None
    KeyCurveId: Literal["TPM_ECC_NIST_P256"] | None = None
    KeyBitLength: Literal[256] | None = None
    Organization: str | None = None
    OrganizationalUnit: str | None = None
    City: str | None = None
    State: str | None = None
    Country: str | None = None
    Email: str | None = None


class ReplaceParameters(Declared):
    CertificateString: str
    CertificateType: Literal["PEM"]
    CertificateUri: TargetLink


class CertificateService(Resource):
    redfish_type = "CertificateService"

    Id: str = "CertificateService"
    Name: str = "Certificate Service"
    CertificateLocations: dict[str, str]
    Actions: dict[str, Any]


class CertificateLocations(Resource):
    redfish_type = "CertificateLocations"

    Id: str = "CertificateLocations"
    Name: str = "Certificate Locations"
    Links: dict[str, Any]


class Certificate(Resource):
    redfish_type = "Certificate"

    Id: str = "1"
    Name: str
    CertificateString: str
    CertificateType: str = "PEM"
    CertificateUsageTypes: list[str]
    Issuer: dict[str, str]
    Subject: dict[str, str]
    ValidNotBefore: str
    ValidNotAfter: str
    KeyUsage: list[str]
    SerialNumber: str
    Fingerprint: str
    FingerprintHashAlgorithm: str = "TPM_ALG_SHA256"
    SignatureAlgorithm: str


def _identifier(name: x509.Name) -> dict[str, str]:
    fields = {"CommonName": NameOID.COMMON_NAME, "Organization": NameOID.ORGANIZATION_NAME}
    found = {k: name.get_attributes_for_oid(oid) for k, oid in fields.items()}
    return {k: str(v[0].value) for k, v in found.items() if v}


def _key_usage(cert: x509.Certificate) -> list[str]:
    usages = ["DigitalSignature"]
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return usages
    names = {
        ExtendedKeyUsageOID.SERVER_AUTH: "ServerAuthentication",
        ExtendedKeyUsageOID.CLIENT_AUTH: "ClientAuthentication",
    }
    return usages + [names[oid] for oid in eku if oid in names]


def _colon_hex(number: int) -> str:
    """``01:A2:...``: the DMTF pattern for a serial number (hex octets, colon-separated)."""
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big").hex(":").upper()


def certificate_body(slot: CertSlot, cert: x509.Certificate, pem: str) -> dict[str, Any]:
    return Certificate(
        Id="1",
        Name=f"{slot.common_name} ({slot.id})",
        CertificateString=pem,
        CertificateType="PEM",
        CertificateUsageTypes=[slot.usage_type],
        Issuer=_identifier(cert.issuer),
        Subject=_identifier(cert.subject),
        ValidNotBefore=cert.not_valid_before_utc.isoformat(timespec="seconds"),
        ValidNotAfter=cert.not_valid_after_utc.isoformat(timespec="seconds"),
        KeyUsage=_key_usage(cert),
        SerialNumber=_colon_hex(cert.serial_number),
        Fingerprint=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        FingerprintHashAlgorithm="TPM_ALG_SHA256",
        SignatureAlgorithm=cert.signature_algorithm_oid.dotted_string,
    ).body(slot.uri)


def _csr_request(store: CertificateStore, body: dict[str, Any]) -> tuple[CertSlot, list[str]]:
    """The slot a GenerateCSR asks for and its AlternativeNames, or a Redfish error."""
    params = validate_action(GenerateCSRParameters, body, GENERATE_CSR)
    target = params.CertificateCollection.odata_id
    slot = store.by_collection(target)
    if slot is None:
        allowed = ", ".join(s.collection for s in store.slots)
        raise RedfishErrorReply(
            400,
            "ActionParameterValueNotInList",
            target,
            "CertificateCollection",
            GENERATE_CSR,
            resolution=f"Use one of: {allowed}.",
        )
    if params.CommonName != slot.common_name:
        raise RedfishErrorReply(
            400,
            "ActionParameterValueError",
            "CommonName",
            GENERATE_CSR,
            resolution=f"The certificates of {slot.collection} name {slot.common_name!r}.",
        )
    if not all(params.AlternativeNames):
        raise RedfishErrorReply(400, "ActionParameterValueError", "AlternativeNames", GENERATE_CSR)
    return slot, params.AlternativeNames


async def _read(store: CertificateStore, slot: CertSlot) -> tuple[str, str] | None:
    try:
        return await asyncio.to_thread(store.read_pair, slot)
    except StateError as exc:
        raise RedfishErrorReply(500, "InternalError") from exc


class CertificateResources:
    """The CertificateService, its locations and the certificate slots of one store."""

    def __init__(self, log: ContextLogger, store: CertificateStore) -> None:
        self.log, self.store = log, store
        self.lock = asyncio.Lock()  # one key generation or installation at a time

    async def service(self, request: Request) -> Response:
        csr_params = GenerateCSRParameters
        declared = CertificateService(
            Id="CertificateService",
            Name="Certificate Service",
            CertificateLocations=link(f"{SERVICE}/CertificateLocations"),
            Actions={
                f"#{GENERATE_CSR}": {
                    "target": f"{SERVICE}/Actions/{GENERATE_CSR}",
                    "@Redfish.ActionInfo": f"{SERVICE}/GenerateCSRActionInfo",
                    "KeyPairAlgorithm@Redfish.AllowableValues": allowable(
                        csr_params, "KeyPairAlgorithm"
                    ),
                    "KeyCurveId@Redfish.AllowableValues": allowable(csr_params, "KeyCurveId"),
                },
                f"#{REPLACE}": {
                    "target": f"{SERVICE}/Actions/{REPLACE}",
                    "@Redfish.ActionInfo": f"{SERVICE}/ReplaceCertificateActionInfo",
                    "CertificateType@Redfish.AllowableValues": allowable(
                        ReplaceParameters, "CertificateType"
                    ),
                },
            },
        )
        return respond(declared.body(SERVICE))

    async def locations(self, request: Request) -> Response:
        store = self.store
        held = await asyncio.gather(
            *(asyncio.to_thread(store.read_pair, slot) for slot in store.slots)
        )
        members = [slot.uri for slot, pair in zip(store.slots, held, strict=True) if pair]
        declared = CertificateLocations(
            Id="CertificateLocations",
            Name="Certificate Locations",
            Links={"Certificates": [link(uri) for uri in members]},
        )
        return respond(declared.body(f"{SERVICE}/CertificateLocations"))

    def _slot(self, request: Request) -> CertSlot:
        path = request.url.path.rstrip("/")
        found = next((s for s in self.store.slots if path in (s.uri, s.collection)), None)
        assert found is not None  # routed only for the store's slots
        return found

    async def slot_collection(self, request: Request) -> Response:
        slot = self._slot(request)
        pair = await _read(self.store, slot)
        members = [slot.uri] if pair else []
        title = f"{slot.id.upper() if slot.id == 'https' else 'Identity'} certificates"
        return respond(collection("CertificateCollection", slot.collection, title, members))

    async def member(self, request: Request) -> Response:
        slot = self._slot(request)
        pair = await _read(self.store, slot)
        if pair is None:
            raise RedfishErrorReply(404, "ResourceNotFound", "Certificate", "1")
        cert = x509.load_pem_x509_certificate(pair[1].encode())
        return respond(certificate_body(slot, cert, pair[1]))

    async def generate_csr(self, request: Request) -> Response:
        slot, names = _csr_request(self.store, await read_object(request))
        async with self.lock:
            csr = await asyncio.to_thread(self.store.generate_csr, slot, tuple(names))
        self.log.info(f"new {slot.id} key made; CSR handed out")
        return respond(
            {
                "@odata.type": "#CertificateService.v1_0_0.GenerateCSRResponse",
                "CSRString": csr,
                "CertificateCollection": link(slot.collection),
            }
        )

    async def replace(self, request: Request) -> Response:
        params = validate_action(ReplaceParameters, await read_object(request), REPLACE)
        target = params.CertificateUri.odata_id
        slot = self.store.by_uri(target)
        if slot is None:
            raise RedfishErrorReply(
                400,
                "ActionParameterValueNotInList",
                target,
                "CertificateUri",
                REPLACE,
                resolution=f"Use one of: {', '.join(s.uri for s in self.store.slots)}.",
            )
        async with self.lock:
            try:
                cert = await asyncio.to_thread(self.store.install, slot, params.CertificateString)
            except CertificateRejected as exc:
                raise RedfishErrorReply(
                    400,
                    "ActionParameterValueError",
                    "CertificateString",
                    REPLACE,
                    resolution=f"{str(exc)[:1].upper()}{str(exc)[1:]}.",
                ) from exc
            except StateError as exc:
                self.log.warning(f"cannot replace the {slot.id} certificate: {exc}")
                raise RedfishErrorReply(500, "InternalError") from exc
        left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
        days = left / dt.timedelta(days=1)
        self.log.info(f"{slot.id} certificate replaced (valid {days:.1f} more days)")
        pair = await _read(self.store, slot)
        assert pair is not None
        return respond(certificate_body(slot, cert, pair[1]))


def _action_info(name: str, params: type[Declared]) -> Any:
    """An ``ActionInfo`` handler whose parameters come from the action's declaration."""

    async def handler(request: Request) -> Response:
        return respond(
            resource(
                "ActionInfo",
                f"{SERVICE}/{name}",
                Id=name,
                Name=f"{name.removesuffix('ActionInfo')} Action Info",
                Parameters=action_parameters(params),
            )
        )

    return handler


def routes(log: ContextLogger, store: CertificateStore) -> list[BaseRoute]:
    """The CertificateService's routes over ``store``'s slots; ``log`` names the service."""
    res = CertificateResources(log, store)
    found: list[BaseRoute] = [
        route(SERVICE, GET=res.service),
        route(f"{SERVICE}/CertificateLocations", GET=res.locations),
        route(f"{SERVICE}/Actions/{GENERATE_CSR}", POST=res.generate_csr),
        route(f"{SERVICE}/Actions/{REPLACE}", POST=res.replace),
        route(
            f"{SERVICE}/GenerateCSRActionInfo",
            GET=_action_info("GenerateCSRActionInfo", GenerateCSRParameters),
        ),
        route(
            f"{SERVICE}/ReplaceCertificateActionInfo",
            GET=_action_info("ReplaceCertificateActionInfo", ReplaceParameters),
        ),
    ]
    for slot in store.slots:
        found.append(route(slot.collection, GET=res.slot_collection))
        found.append(route(slot.uri, GET=res.member))
    return found
