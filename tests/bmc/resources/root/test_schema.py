"""Every resource the service serves uses only properties its DMTF schema defines.

A light, offline stand-in for DMTF's service validator: walk every link from the
ServiceRoot, and check each resource's top-level properties against its CSDL file.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import racklet.bmc
from tests.bmc.conftest import UNIT, Bench, eventually

# The DMTF CSDL files the BMC ships and serves (unmodified, with the DMTF licence; that they
# are DMTF's own bytes is checked in test_network_and_schemas.py).
CSDL = Path(str(resources.files("racklet.bmc").joinpath("schemas")))


def _properties(schema: str) -> set[str]:
    names: set[str] = set()
    for stem in (schema, "Resource"):
        text = (CSDL / f"{stem}_v1.xml").read_text()
        names |= set(re.findall(r'(?:Navigation)?Property Name="(\w+)"', text))
    return names | {"Id", "Name", "Description", "Oem", "Actions", "Links"}


def _links(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "@odata.id" and isinstance(item, str):
                found.append(item)
            else:
                found += _links(item)
    elif isinstance(value, list):
        for item in value:
            found += _links(item)
    return found


async def test_every_resource_agrees_with_its_schema(bench: Bench) -> None:
    bench.uart.write(b"hello\n")
    await eventually(lambda: bench.service.context.console.lines(), "a console line")
    seen: set[str] = set()
    queue = ["/redfish/v1/"]
    async with bench.client() as client:
        while queue:
            path = queue.pop()
            if path in seen or "#" in path:
                continue
            seen.add(path)
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["OData-Version"] == "4.0"
            body = response.json()
            odata_type = body["@odata.type"]
            match = re.fullmatch(r"#(\w+)\.(?:v\d+_\d+_\d+\.)?(\w+)", odata_type)
            assert match, odata_type
            schema = match.group(1)
            if match.group(0).count(".") == 2:
                namespace = odata_type[1:].rsplit(".", 1)[0]
                text = (CSDL / f"{schema}_v1.xml").read_text()
                assert f'Namespace="{namespace}"' in text, odata_type
            allowed = _properties(schema)
            for key in body:
                if key.startswith("@") or "@" in key:
                    continue
                assert key in allowed, f"{path}: {key} is not in {schema}"
            assert body["@odata.id"].rstrip("/") == path.rstrip("/")
            queue += [link for link in _links(body) if link != body["@odata.id"]]
    assert f"/redfish/v1/Systems/{UNIT}/LogServices/Console/Entries/1" in seen
    assert f"/redfish/v1/Chassis/{UNIT}/EnvironmentMetrics" in seen


def test_public_names() -> None:
    assert sorted(racklet.bmc.__all__) == [
        "AccountsError",
        "BmcError",
        "BmcFirmwareSlots",
        "BmcHost",
        "BmcService",
        "BmcSettings",
        "BootSlot",
        "FIRMWARE_CHANNEL",
        "ImageRejected",
        "ImageUpload",
        "ImageVerifier",
        "SlotBusy",
        "SlotProvider",
        "StagedSlots",
        "StateError",
        "TufImageVerifier",
        "UnitSlots",
        "VerifiedImage",
        "build_manifest",
        "firmware_oem_parameters",
        "new_password",
        "parse_manifest",
        "reject_all",
        "write_accounts",
    ]
