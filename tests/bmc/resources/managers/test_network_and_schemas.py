"""The BMC's NetworkProtocol reports its listeners as they really are, and the BMC serves
every schema file its ``$metadata`` references itself (no URL points outside it)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.bmc.conftest import Bench

SHARED_CSDL = (
    Path(__file__).resolve().parents[5] / "shared" / "redfish" / "csdl"
)  # beside the clone
BUNDLED = resources.files("racklet.bmc").joinpath("schemas")
PROTOCOL = "/redfish/v1/Managers/bmc/NetworkProtocol"


async def test_network_protocol_reports_the_https_port_it_was_reached_on(bench: Bench) -> None:
    port = urlsplit(bench.url).port
    async with bench.client() as http:
        manager = (await http.get("/redfish/v1/Managers/bmc")).json()
        assert manager["NetworkProtocol"]["@odata.id"] == PROTOCOL
        body = (await http.get(PROTOCOL)).json()
        assert body["HTTPS"] == {
            "ProtocolEnabled": True,
            "Port": port,
            "Certificates": {"@odata.id": f"{PROTOCOL}/HTTPS/Certificates"},
        }
        assert body["HTTP"]["ProtocolEnabled"] is False
        # A protocol may be kept off (the OCP profiles write that), never turned on.
        refused = await http.patch(PROTOCOL, json={"HTTP": {"ProtocolEnabled": True}})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "Base.1.22.PropertyValueNotInList"
    # HTTP really is off: plain HTTP to the same port gets no HTTP answer.
    async with httpx.AsyncClient(timeout=5.0) as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get(f"http://127.0.0.1:{port}/redfish/v1/")


async def test_metadata_references_only_schema_files_the_bmc_serves(bench: Bench) -> None:
    async with bench.client(auth=None) as anonymous:
        metadata = await anonymous.get("/redfish/v1/$metadata")
        assert metadata.status_code == 200
        uris = re.findall(r'Uri="([^"]+)"', metadata.text)
        assert len(uris) > 30
        assert all(uri.startswith("/redfish/v1/Schemas/") for uri in uris), uris
        for uri in uris:
            # Open like $metadata itself: a client reads schemas before it logs in.
            served = await anonymous.get(uri)
            assert served.status_code == 200, uri
            assert served.headers["content-type"].startswith("application/xml")
            name = uri.rsplit("/", 1)[1]
            assert served.content == BUNDLED.joinpath(name).read_bytes()
            namespace = name.removesuffix("_v1.xml")
            assert f'Namespace="{namespace}"' in served.text
    bundled = {p.name for p in BUNDLED.iterdir()}
    assert bundled == {uri.rsplit("/", 1)[1] for uri in uris} | {"LICENSE.md"}


def test_the_bundled_schemas_are_dmtfs_own_bytes() -> None:
    """What the BMC serves as DMTF's schemas is DMTF's release, unmodified (and its licence)."""
    if not SHARED_CSDL.is_dir():
        pytest.skip(f"no DMTF schema release at {SHARED_CSDL} to compare with")
    for bundled in BUNDLED.iterdir():
        original = SHARED_CSDL.parent / "LICENSE.md" if bundled.name == "LICENSE.md" else None
        original = original or SHARED_CSDL / bundled.name
        assert bundled.read_bytes() == original.read_bytes(), bundled.name


@pytest.mark.parametrize(
    "path",
    [
        "/redfish/v1/Schemas/Nope_v1.xml",
        "/redfish/v1/Schemas/..%2F..%2Fsessions.json",
        "/redfish/v1/Schemas/LICENSE.md",
        "/redfish/v1/Schemas/Chassis_v1.xml.bak",
    ],
)
async def test_a_schema_the_bmc_does_not_reference_is_not_found(bench: Bench, path: str) -> None:
    async with bench.client() as http:
        response = await http.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "Base.1.22.ResourceNotFound"
