"""OCP's Redfish profiles, checked by DMTF's Interop Validator against a twin BMC and the RMC.

Each test starts the real services (a BMC on a twin board; two BMCs with the RMC in front of
them), runs ``rf_interop_validator`` with one vendored profile and fails on any FAIL, naming
the failing resources and properties.

The RMC serves its own resources (ServiceRoot, AccountService, ``Managers/rmc``,
``Chassis/rack``, EventService, UpdateService, ...) and forwards the BMCs' (``unit-1_...``).
The RMC tests hold the RMC's own resources to 0 FAIL, and the whole walk through the RMC (the
units' resources too) to 0 FAIL: it has no exception left.
The RMC runs as ``racklet up`` configures it: it knows the rack's boot server, the one origin
its ``SimpleUpdate`` fetches from (nothing is fetched during a walk). Before the walk the
tests make one failed login at the RMC, so its EventLog holds an entry (a fresh RMC has
logged nothing, and the profiles ask for a LogEntry to check); a BMC logs its own start, so
its EventLog never starts empty.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet.net import client_context
from racklet.pki import RackCA
from tests.bmc.twin_bench import ADMIN as BMC_ADMIN
from tests.bmc.twin_bench import running_twin_bmc
from tests.redfish.interop import BMC_PROFILES, InteropReport, run_interop
from tests.rmc.conftest import ADMIN as RMC_ADMIN
from tests.rmc.conftest import BMC_PASSWORD, UNITS, Rack, running_rack

_FORWARDED = re.compile(
    r"^/redfish/v1/(Systems|Chassis|Managers|UpdateService/FirmwareInventory|TaskService/Tasks)/("
    + "|".join(UNITS)
    + ")_"
)

RMC_AS_UP: dict[str, Any] = {"update_origins": ("https://127.0.0.1:9",)}
"""The RMC's settings as ``racklet up`` gives them: the origin of the rack's boot server."""

pytestmark = pytest.mark.timeout(900)


def _rmc_own(report: InteropReport) -> list[str]:
    """FAILs of the RMC's own resources: resource types and properties not behind a BMC."""
    return [str(f) for f in report.failures if not _FORWARDED.match(f.uri)]


async def _log_one_event(url: str, ca: Path) -> None:
    """A failed login: the RMC's EventLog then holds an AccountSecurity entry."""
    async with httpx.AsyncClient(verify=client_context(ca)) as client:
        answer = await client.post(
            f"{url}/redfish/v1/SessionService/Sessions",
            json={"UserName": RMC_ADMIN[0], "Password": "not the password"},
        )
    assert answer.status_code == 401


async def _enrol_units(rack: Rack, ca: RackCA, root: Path) -> None:
    """Certify each unit's identity as the controller does on an enrolled rack (the key made
    in the BMC by GenerateCSR, the rack CA's certificate installed by ReplaceCertificate):
    the test rack runs no controller, and a unit's ``Certificates`` is empty until then.
    The BMC checks the certificate against the rack CA its provisioning gave it
    (``trust.json``'s ``caBundle``), which the test rack's BMCs are not given either."""
    service = "/redfish/v1/CertificateService/Actions/CertificateService"
    for unit, url in rack.bmc_urls.items():
        trust = {"caBundle": ca.cert_pem.decode()}
        (root / "bmc" / unit / "trust.json").write_text(json.dumps(trust))
        collection = f"/redfish/v1/Systems/{unit}/Certificates"
        async with httpx.AsyncClient(
            base_url=url, verify=client_context(rack.ca), auth=("admin", BMC_PASSWORD)
        ) as client:
            csr = await client.post(
                f"{service}.GenerateCSR",
                json={"CertificateCollection": {"@odata.id": collection}, "CommonName": unit},
            )
            assert csr.status_code == 200, csr.text
            pem = ca.sign_csr(
                csr.json()["CSRString"].encode(),
                common_name=unit,
                role=f"unit/{unit}",
                server=True,
                client=True,
                days=7,
            )
            replaced = await client.post(
                f"{service}.ReplaceCertificate",
                json={
                    "CertificateString": pem.decode(),
                    "CertificateType": "PEM",
                    "CertificateUri": {"@odata.id": f"{collection}/1"},
                },
            )
            assert replaced.status_code == 200, replaced.text


@pytest.mark.parametrize("profile", BMC_PROFILES)
async def test_bmc_passes_ocp_profile(profile: str, tmp_path: Path) -> None:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        report = await run_interop(bmc.url, *BMC_ADMIN, profile, tmp_path)
    assert report.summary["Pass"] > 50, report.log[-3000:]
    assert not report.failures, f"{len(report.failures)} FAIL:\n{report.failures_text()}"


_RMC_OWN_WALKED = {
    "OCPRackManagerController.v1_1_0.corrected": "/redfish/v1/Chassis/rack",
    "OCPServiceBaseline.v1_0_0": "/redfish/v1/CertificateService",
}
"""A resource of the RMC's own that each profile's walk must reach (the Service Baseline
reads no Chassis; it reads the CertificateService the RMC shares with the BMC)."""


@pytest.mark.parametrize("profile", list(_RMC_OWN_WALKED))
async def test_rmc_own_resources_pass_ocp_profile(profile: str, tmp_path: Path) -> None:
    async with running_rack(tmp_path / "rack", RMC_AS_UP) as rack:
        await _log_one_event(rack.url, rack.ca)
        report = await run_interop(rack.url, *RMC_ADMIN, profile, tmp_path)
    assert report.summary["Pass"] > 100, report.log[-3000:]
    own = _rmc_own(report)
    assert not own, f"{len(own)} FAIL on the RMC's own resources:\n" + "\n".join(own)
    # The walk went through the RMC to the units' resources, so 0 FAIL means something.
    walked = {f.uri for f in report.findings}
    assert _RMC_OWN_WALKED[profile] in walked
    assert any(_FORWARDED.match(uri) for uri in walked)


async def test_rmc_whole_walk_passes_rack_manager_profile(tmp_path: Path) -> None:
    async with running_rack(tmp_path / "rack", RMC_AS_UP) as rack:
        await _log_one_event(rack.url, rack.ca)
        await _enrol_units(rack, RackCA.load(tmp_path / "rack" / "pki"), tmp_path / "rack")
        report = await run_interop(
            rack.url, *RMC_ADMIN, "OCPRackManagerController.v1_1_0.corrected", tmp_path
        )
    assert not report.failures, f"{len(report.failures)} FAIL:\n{report.failures_text()}"
    assert any(_FORWARDED.match(f.uri) for f in report.findings)
    # The requirement the units missed last: every OS slot can be updated (the active one
    # through the other, as the BMC firmware is; tests/e2e/test_os_push.py does it).
    slots = [f for f in report.findings if f.uri.endswith("_slot-a") and f.prop == "Updateable"]
    assert slots, "the walk did not check a unit's slot-a"
