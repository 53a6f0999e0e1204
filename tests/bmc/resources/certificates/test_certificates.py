"""CertificateService over real TLS: the BMC makes the key, the rack CA signs its CSR, and the
next handshake (HTTPS) or the unit's next identity fetch (backplane) uses the new certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from racklet.bmc import BmcService, BmcSettings, write_accounts
from racklet.net import AppServer, client_context
from racklet.pki import RackCA
from tests.bmc.conftest import (
    ADMIN,
    READER,
    UNIT,
    FakeLink,
    FakeUnit,
    FastClock,
    free_port,
    make_board,
    make_state_dir,
)

OPERATOR = ("operator", "operates but does not manage")
SERVICE = "/redfish/v1/CertificateService"
CSR = f"{SERVICE}/Actions/CertificateService.GenerateCSR"
REPLACE = f"{SERVICE}/Actions/CertificateService.ReplaceCertificate"
HTTPS = "/redfish/v1/Managers/bmc/NetworkProtocol/HTTPS/Certificates"
IDENTITY = f"/redfish/v1/Systems/{UNIT}/Certificates"


@dataclass
class CertBench:
    service: BmcService
    url: str
    ca_path: Path
    ca: RackCA
    state_dir: Path
    link: FakeLink
    port: int

    def client(self, auth: tuple[str, str] | None = ADMIN) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, verify=client_context(self.ca_path), auth=auth, timeout=10.0
        )


@contextlib.asynccontextmanager
async def running(tmp_path: Path, *, identity: bool = True) -> AsyncIterator[CertBench]:
    state, ca_path = make_state_dir(tmp_path)
    if not identity:
        for suffix in (".key", ".crt"):
            (state / f"identity{suffix}").unlink()
    write_accounts(state / "accounts.json", *OPERATOR, role="Operator")
    board, _, link, _ = make_board(FakeUnit(), FastClock(50.0))
    service = BmcService(
        board, BmcSettings(unit=UNIT, state_dir=state, firmware_version="racklet-bmc test")
    )
    port = free_port()
    server = AppServer(
        service.app,
        port=port,
        ssl_context=service.certificates.server_context(ca_path),
        name="bmc-test",
    )
    await service.start()
    try:
        await server.start()
        try:
            yield CertBench(
                service,
                f"https://127.0.0.1:{port}",
                ca_path,
                RackCA.load(tmp_path / "pki"),
                state,
                link,
                port,
            )
        finally:
            await server.stop()
    finally:
        await service.stop()


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[CertBench]:
    async with running(tmp_path) as started:
        yield started


async def _csr(http: httpx.AsyncClient, collection: str, common_name: str) -> str:
    response = await http.post(
        CSR, json={"CertificateCollection": {"@odata.id": collection}, "CommonName": common_name}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["CertificateCollection"] == {"@odata.id": collection}
    return str(body["CSRString"])


async def _replace(http: httpx.AsyncClient, uri: str, pem: bytes) -> httpx.Response:
    return await http.post(
        REPLACE,
        json={
            "CertificateString": pem.decode(),
            "CertificateType": "PEM",
            "CertificateUri": {"@odata.id": uri},
        },
    )


async def _served_certificate(bench: CertBench) -> x509.Certificate:
    """The certificate a fresh TLS handshake with the BMC presents."""
    _, writer = await asyncio.open_connection(
        "127.0.0.1", bench.port, ssl=client_context(bench.ca_path)
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return x509.load_der_x509_certificate(der)


def _error_id(response: httpx.Response) -> str:
    return str(response.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"])


async def test_the_service_names_where_certificates_live(bench: CertBench) -> None:
    async with bench.client(READER) as http:
        root = (await http.get("/redfish/v1")).json()
        service = (await http.get(SERVICE)).json()
        locations = (await http.get(f"{SERVICE}/CertificateLocations")).json()
        https = (await http.get(f"{HTTPS}/1")).json()
        protocol = (await http.get("/redfish/v1/Managers/bmc/NetworkProtocol")).json()
        system = (await http.get(f"/redfish/v1/Systems/{UNIT}")).json()
    assert root["CertificateService"] == {"@odata.id": SERVICE}
    assert set(service["Actions"]) == {
        "#CertificateService.GenerateCSR",
        "#CertificateService.ReplaceCertificate",
    }
    uris = {link["@odata.id"] for link in locations["Links"]["Certificates"]}
    assert uris == {f"{HTTPS}/1", f"{IDENTITY}/1"}
    assert protocol["HTTPS"]["Certificates"] == {"@odata.id": HTTPS}
    assert system["Certificates"] == {"@odata.id": IDENTITY}
    served = await _served_certificate(bench)
    serial = served.serial_number
    octets = serial.to_bytes((serial.bit_length() + 7) // 8, "big")
    assert https["SerialNumber"].replace(":", "").lower() == octets.hex()
    assert https["Subject"]["CommonName"] == f"{UNIT}-bmc"
    assert https["CertificateUsageTypes"] == ["Web"]


async def test_a_signed_csr_becomes_the_https_certificate_of_the_next_handshake(
    bench: CertBench,
) -> None:
    before = await _served_certificate(bench)
    async with bench.client() as http:
        csr = await _csr(http, HTTPS, f"{UNIT}-bmc")
        signed = bench.ca.sign_csr(
            csr.encode(), common_name=f"{UNIT}-bmc", role=f"bmc/{UNIT}", days=7
        )
        response = await _replace(http, f"{HTTPS}/1", signed)
        assert response.status_code == 200, response.text
        shown = (await http.get(f"{HTTPS}/1")).json()
    after = await _served_certificate(bench)
    expected = x509.load_pem_x509_certificate(signed)
    assert after.serial_number == expected.serial_number != before.serial_number
    assert shown["ValidNotAfter"] == expected.not_valid_after_utc.isoformat(timespec="seconds")
    assert shown["CertificateString"].strip() == signed.decode().strip()
    # The key never left the BMC: it is on its disk, 0600, and only there.
    held = (bench.state_dir / "certificates" / "https.pem").stat()
    assert held.st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in response.text and "PRIVATE KEY" not in csr


async def test_the_units_next_identity_fetch_gets_the_new_identity(bench: CertBench) -> None:
    async with bench.client() as http:
        csr = await _csr(http, IDENTITY, UNIT)
        signed = bench.ca.sign_csr(
            csr.encode(), common_name=UNIT, role=f"unit/{UNIT}", server=True, client=True, days=7
        )
        response = await _replace(http, f"{IDENTITY}/1", signed)
        assert response.status_code == 200, response.text
    link = await bench.link.connect()
    try:
        identity = await link.request("identity")
    finally:
        await link.close()
    cert = x509.load_pem_x509_certificate(identity["cert"].encode())
    key = serialization.load_pem_private_key(identity["key"].encode(), None)
    assert cert.serial_number == x509.load_pem_x509_certificate(signed).serial_number
    assert _der(cert.public_key()) == _der(key.public_key())
    assert not (bench.state_dir / "identity.key").exists()  # one current pair, not two


def _der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


async def test_a_first_boot_waits_for_its_identity(tmp_path: Path) -> None:
    async with running(tmp_path, identity=False) as bench:
        async with bench.client(READER) as http:
            empty = (await http.get(IDENTITY)).json()
            assert empty["Members"] == []
            assert (await http.get(f"{IDENTITY}/1")).status_code == 404
        link = await bench.link.connect()
        try:
            fetch = asyncio.create_task(link.request("identity"))
            async with bench.client() as http:
                csr = await _csr(http, IDENTITY, UNIT)
                signed = bench.ca.sign_csr(
                    csr.encode(),
                    common_name=UNIT,
                    role=f"unit/{UNIT}",
                    server=True,
                    client=True,
                    days=7,
                )
                assert (await _replace(http, f"{IDENTITY}/1", signed)).status_code == 200
            identity = await asyncio.wait_for(fetch, timeout=10)
        finally:
            await link.close()
        assert identity["cert"].strip() == signed.decode().strip()


@pytest.mark.parametrize("wrong", ["other key", "foreign CA", "missing usage", "other role"])
async def test_a_certificate_that_does_not_fit_is_refused_and_nothing_changes(
    bench: CertBench, tmp_path: Path, wrong: str
) -> None:
    async with bench.client() as http:
        before = (await http.get(f"{IDENTITY}/1")).json()
        csr = await _csr(http, IDENTITY, UNIT)
        if wrong == "other key":
            pem = bench.ca.issue(UNIT, server=True, client=True, days=7).cert_pem
        elif wrong == "foreign CA":
            foreign = RackCA.create(tmp_path / "foreign", rack="elsewhere")
            pem = foreign.sign_csr(csr.encode(), common_name=UNIT, server=True, client=True, days=7)
        elif wrong == "missing usage":
            pem = bench.ca.sign_csr(
                csr.encode(), common_name=UNIT, role=f"unit/{UNIT}", server=True, client=False
            )
        else:  # the right name and usages, but the controller's role: no BMC may hold it
            pem = bench.ca.sign_csr(
                csr.encode(), common_name=UNIT, role="controller", server=True, client=True
            )
        response = await _replace(http, f"{IDENTITY}/1", pem)
        after = (await http.get(f"{IDENTITY}/1")).json()
    assert response.status_code == 400
    assert _error_id(response) == "Base.1.22.ActionParameterValueError"
    resolution = response.json()["error"]["@Message.ExtendedInfo"][0]["Resolution"]
    assert {
        "other key": "another key",
        "foreign CA": "rack CA",
        "missing usage": "client",
        "other role": "spiffe://rack-1/unit/unit-1",
    }[wrong] in resolution
    assert after == before
    link = await bench.link.connect()
    try:
        identity = await link.request("identity")
    finally:
        await link.close()
    assert identity["cert"].strip() == before["CertificateString"].strip()


async def test_replace_without_a_pending_key_is_refused(bench: CertBench) -> None:
    async with bench.client() as http:
        pem = bench.ca.issue(f"{UNIT}-bmc", days=7).cert_pem
        response = await _replace(http, f"{HTTPS}/1", pem)
    assert response.status_code == 400
    assert "GenerateCSR" in response.json()["error"]["@Message.ExtendedInfo"][0]["Resolution"]


@pytest.mark.parametrize(
    ("body", "message_id"),
    [
        ({"CommonName": UNIT}, "ActionParameterMissing"),
        (
            {"CertificateCollection": {"@odata.id": "/redfish/v1/Nowhere"}, "CommonName": UNIT},
            "ActionParameterValueNotInList",
        ),
        (
            {"CertificateCollection": {"@odata.id": IDENTITY}, "CommonName": "unit-9"},
            "ActionParameterValueError",
        ),
        (
            {
                "CertificateCollection": {"@odata.id": IDENTITY},
                "CommonName": UNIT,
                "KeyCurveId": "TPM_ECC_NIST_P384",
            },
            "ActionParameterValueNotInList",
        ),
        (
            {"CertificateCollection": {"@odata.id": IDENTITY}, "CommonName": UNIT, "Colour": 1},
            "ActionParameterUnknown",
        ),
    ],
)
async def test_bad_csr_requests_get_redfish_errors(
    bench: CertBench, body: dict[str, Any], message_id: str
) -> None:
    async with bench.client() as http:
        response = await http.post(CSR, json=body)
    assert response.status_code == 400
    assert _error_id(response) == f"Base.1.22.{message_id}"


async def test_bad_replace_requests_get_redfish_errors(bench: CertBench) -> None:
    async with bench.client() as http:
        garbage = await _replace(http, f"{IDENTITY}/1", b"not a certificate")
        missing = await http.post(REPLACE, json={"CertificateString": "x"})
        nowhere = await _replace(http, "/redfish/v1/Elsewhere/1", b"x")
    assert garbage.status_code == missing.status_code == nowhere.status_code == 400
    assert _error_id(garbage) == "Base.1.22.ActionParameterValueError"
    assert _error_id(missing) == "Base.1.22.ActionParameterMissing"
    assert _error_id(nowhere) == "Base.1.22.ActionParameterValueNotInList"


@pytest.mark.parametrize(
    ("auth", "status"), [(None, 401), (READER, 403), (OPERATOR, 403), (ADMIN, 200)]
)
async def test_only_a_manager_may_make_keys(
    bench: CertBench, auth: tuple[str, str] | None, status: int
) -> None:
    async with bench.client(auth) as http:
        response = await http.post(
            CSR, json={"CertificateCollection": {"@odata.id": HTTPS}, "CommonName": f"{UNIT}-bmc"}
        )
        replace = await _replace(http, f"{HTTPS}/1", b"x")
        read = await http.get(f"{HTTPS}/1")
    assert response.status_code == status
    assert replace.status_code == (400 if status == 200 else status)
    assert read.status_code == (401 if auth is None else 200)
    if status != 200:
        assert not (bench.state_dir / "certificates" / "https.pending.key").exists()


async def test_a_bmc_without_the_rack_ca_refuses_a_certificate_and_keeps_its_own(
    bench: CertBench,
) -> None:
    """A BMC whose trust bundle is gone cannot tell the rack's certificate from anyone's: the
    replacement is a Redfish 400 naming why (not a 500), and the BMC serves its old one."""
    before = await _served_certificate(bench)
    async with bench.client() as http:
        csr = await _csr(http, HTTPS, f"{UNIT}-bmc")
        signed = bench.ca.sign_csr(
            csr.encode(), common_name=f"{UNIT}-bmc", role=f"bmc/{UNIT}", days=7
        )
        (bench.state_dir / "trust.json").rename(bench.state_dir / "trust.json.away")
        response = await _replace(http, f"{HTTPS}/1", signed)
        shown = (await http.get(f"{HTTPS}/1")).json()
    assert response.status_code == 400, response.text
    assert _error_id(response) == "Base.1.22.ActionParameterValueError"
    resolution = response.json()["error"]["@Message.ExtendedInfo"][0]["Resolution"]
    assert "no rack CA" in resolution and "trust.json is missing" in resolution
    assert (await _served_certificate(bench)).serial_number == before.serial_number
    serial = before.serial_number
    octets = serial.to_bytes((serial.bit_length() + 7) // 8, "big")
    assert shown["SerialNumber"].replace(":", "").lower() == octets.hex()
    assert not (bench.state_dir / "certificates" / "https.pem").exists()
