"""``CertificateService``: the BMC makes keys, the rack CA certifies them, through Redfish.

Two certificate collections, each with one member ``1``:

* ``Systems/<unit>/Certificates`` — the unit's identity (ComputerSystem ``Certificates``,
  "certificates for device identity and attestation"; usage ``LDevID``, a locally issued
  device identity). The BMC hands it to the unit over the backplane when the unit boots.
* ``Managers/bmc/NetworkProtocol/HTTPS/Certificates`` — the BMC's own HTTPS certificate, where
  OpenBMC's bmcweb puts it too; a replacement is used by the next TLS handshake.

``GenerateCSR`` makes a new EC P-256 key inside the BMC and answers its CSR;
``ReplaceCertificate`` installs the certificate the rack CA signed for it. Both need
``ConfigureManager`` (DMTF privilege registry: CertificateService is the manager's); reading
needs ``Login``. Every refusal is a Base-registry error body; keys never leave the BMC
(except the unit's own, to its unit, over the backplane).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._http.odata import ROOT, collection, link, resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import read_object, respond, route
from racklet.bmc._state.certificates import CertificateRejected, CertificateStore, CertSlot
from racklet.bmc._state.context import BmcContext
from racklet.bmc.errors import StateError

SERVICE = f"{ROOT}/CertificateService"
GENERATE_CSR = "CertificateService.GenerateCSR"
REPLACE = "CertificateService.ReplaceCertificate"
KEY_ALGORITHMS = ("TPM_ALG_ECDSA",)
KEY_CURVES = ("TPM_ECC_NIST_P256",)
CERT_TYPES = ("PEM",)
# GenerateCSR parameters accepted (the DN details are not used: the CA names the holder).
_CSR_STRINGS = ("Organization", "OrganizationalUnit", "City", "State", "Country", "Email")
_CSR_PARAMETERS = {
    "CertificateCollection",
    "CommonName",
    "AlternativeNames",
    "KeyPairAlgorithm",
    "KeyCurveId",
    "KeyBitLength",
    *_CSR_STRINGS,
}


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
    return resource(
        "Certificate",
        slot.uri,
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
    )


def _string(body: dict[str, Any], name: str, action: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise RedfishErrorReply(400, "ActionParameterMissing", action, name)
        return None
    if not isinstance(value, str):
        raise RedfishErrorReply(
            400, "ActionParameterValueTypeError", json.dumps(value), name, action
        )
    return value


def _link_target(body: dict[str, Any], name: str, action: str) -> str:
    value = body.get(name)
    if value is None:
        raise RedfishErrorReply(400, "ActionParameterMissing", action, name)
    target = value.get("@odata.id") if isinstance(value, dict) else None
    if not isinstance(target, str):
        raise RedfishErrorReply(
            400, "ActionParameterValueTypeError", json.dumps(value), name, action
        )
    return target


def _check_unknown(body: dict[str, Any], allowed: set[str], action: str) -> None:
    for name in body:
        if name not in allowed and not name.startswith("@"):
            raise RedfishErrorReply(400, "ActionParameterUnknown", action, name)


def _csr_request(store: CertificateStore, body: dict[str, Any]) -> tuple[CertSlot, list[str]]:
    """The slot a GenerateCSR asks for and its AlternativeNames, or a Redfish error."""
    _check_unknown(body, _CSR_PARAMETERS, GENERATE_CSR)
    target = _link_target(body, "CertificateCollection", GENERATE_CSR)
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
    common_name = _string(body, "CommonName", GENERATE_CSR, required=True)
    if common_name != slot.common_name:
        raise RedfishErrorReply(
            400,
            "ActionParameterValueError",
            "CommonName",
            GENERATE_CSR,
            resolution=f"The certificates of {slot.collection} name {slot.common_name!r}.",
        )
    for name, allowed_values in (("KeyPairAlgorithm", KEY_ALGORITHMS), ("KeyCurveId", KEY_CURVES)):
        value = _string(body, name, GENERATE_CSR)
        if value is not None and value not in allowed_values:
            raise RedfishErrorReply(
                400,
                "ActionParameterValueNotInList",
                value,
                name,
                GENERATE_CSR,
                resolution=f"Use {allowed_values[0]}: this BMC makes EC P-256 keys only.",
            )
    bits = body.get("KeyBitLength")
    if bits is not None and bits != 256:
        raise RedfishErrorReply(
            400, "ActionParameterValueNotInList", json.dumps(bits), "KeyBitLength", GENERATE_CSR
        )
    for name in _CSR_STRINGS:
        _string(body, name, GENERATE_CSR)
    names = body.get("AlternativeNames", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise RedfishErrorReply(
            400,
            "ActionParameterValueTypeError",
            json.dumps(names),
            "AlternativeNames",
            GENERATE_CSR,
        )
    return slot, names


def routes(ctx: BmcContext, store: CertificateStore) -> list[Route]:
    lock = asyncio.Lock()  # one key generation or installation at a time

    async def service(request: Request) -> Response:
        return respond(
            resource(
                "CertificateService",
                SERVICE,
                Id="CertificateService",
                Name="Certificate Service",
                CertificateLocations=link(f"{SERVICE}/CertificateLocations"),
                Actions={
                    f"#{GENERATE_CSR}": {
                        "target": f"{SERVICE}/Actions/{GENERATE_CSR}",
                        "KeyPairAlgorithm@Redfish.AllowableValues": list(KEY_ALGORITHMS),
                        "KeyCurveId@Redfish.AllowableValues": list(KEY_CURVES),
                    },
                    f"#{REPLACE}": {
                        "target": f"{SERVICE}/Actions/{REPLACE}",
                        "CertificateType@Redfish.AllowableValues": list(CERT_TYPES),
                    },
                },
            )
        )

    async def locations(request: Request) -> Response:
        held = await asyncio.gather(
            *(asyncio.to_thread(store.read_pair, slot) for slot in store.slots)
        )
        members = [slot.uri for slot, pair in zip(store.slots, held, strict=True) if pair]
        return respond(
            resource(
                "CertificateLocations",
                f"{SERVICE}/CertificateLocations",
                Id="CertificateLocations",
                Name="Certificate Locations",
                Links={"Certificates": [link(uri) for uri in members]},
            )
        )

    def collection_of(slot: CertSlot) -> Any:
        async def handler(request: Request) -> Response:
            pair = await _read(store, slot)
            members = [slot.uri] if pair else []
            title = f"{slot.id.upper() if slot.id == 'https' else 'Identity'} certificates"
            return respond(collection("CertificateCollection", slot.collection, title, members))

        return handler

    def member_of(slot: CertSlot) -> Any:
        async def handler(request: Request) -> Response:
            pair = await _read(store, slot)
            if pair is None:
                raise RedfishErrorReply(404, "ResourceNotFound", "Certificate", "1")
            cert = x509.load_pem_x509_certificate(pair[1].encode())
            return respond(certificate_body(slot, cert, pair[1]))

        return handler

    async def generate_csr(request: Request) -> Response:
        slot, names = _csr_request(store, await read_object(request))
        async with lock:
            csr = await asyncio.to_thread(store.generate_csr, slot, tuple(names))
        ctx.log.info(f"new {slot.id} key made; CSR handed out")
        return respond(
            {
                "@odata.type": "#CertificateService.v1_0_0.GenerateCSRResponse",
                "CSRString": csr,
                "CertificateCollection": link(slot.collection),
            }
        )

    async def replace(request: Request) -> Response:
        body = await read_object(request)
        _check_unknown(body, {"CertificateString", "CertificateType", "CertificateUri"}, REPLACE)
        pem = _string(body, "CertificateString", REPLACE, required=True)
        kind = _string(body, "CertificateType", REPLACE, required=True)
        target = _link_target(body, "CertificateUri", REPLACE)
        if kind not in CERT_TYPES:
            raise RedfishErrorReply(
                400, "ActionParameterValueNotInList", kind, "CertificateType", REPLACE
            )
        slot = store.by_uri(target)
        if slot is None:
            raise RedfishErrorReply(
                400,
                "ActionParameterValueNotInList",
                target,
                "CertificateUri",
                REPLACE,
                resolution=f"Use one of: {', '.join(s.uri for s in store.slots)}.",
            )
        assert pem is not None
        async with lock:
            try:
                cert = await asyncio.to_thread(store.install, slot, pem)
            except CertificateRejected as exc:
                raise RedfishErrorReply(
                    400,
                    "ActionParameterValueError",
                    "CertificateString",
                    REPLACE,
                    resolution=f"{str(exc)[:1].upper()}{str(exc)[1:]}.",
                ) from exc
            except StateError as exc:
                ctx.log.warning(f"cannot replace the {slot.id} certificate: {exc}")
                raise RedfishErrorReply(500, "InternalError") from exc
        left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
        days = left / dt.timedelta(days=1)
        ctx.log.info(f"{slot.id} certificate replaced (valid {days:.1f} more days)")
        pair = await _read(store, slot)
        assert pair is not None
        return respond(certificate_body(slot, cert, pair[1]))

    found: list[Route] = [
        route(SERVICE, GET=service),
        route(f"{SERVICE}/CertificateLocations", GET=locations),
        route(f"{SERVICE}/Actions/{GENERATE_CSR}", POST=generate_csr),
        route(f"{SERVICE}/Actions/{REPLACE}", POST=replace),
    ]
    for slot in store.slots:
        found.append(route(slot.collection, GET=collection_of(slot)))
        found.append(route(slot.uri, GET=member_of(slot)))
    return found


async def _read(store: CertificateStore, slot: CertSlot) -> tuple[str, str] | None:
    try:
        return await asyncio.to_thread(store.read_pair, slot)
    except StateError as exc:
        raise RedfishErrorReply(500, "InternalError") from exc
