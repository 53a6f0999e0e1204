"""The DMTF schema versions this service implements, in one place.

Every resource names its ``@odata.type`` from :data:`TYPES`; the ``$metadata`` document is
generated from the same table, so the two cannot disagree. Versions are those of the DMTF
2025.4 CSDL (``shared/redfish/csdl``); every property the service emits exists in them.
The CSDL file of each is bundled (``racklet/bmc/schemas``, DMTF's BSD-3 licence beside them)
and served by the BMC itself at ``/redfish/v1/Schemas/<file>``: ``$metadata`` points there,
so a client needs nothing from outside the BMC to read what it references.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

ROOT = "/redfish/v1"
SCHEMAS = f"{ROOT}/Schemas"
REDFISH_VERSION = "1.22.0"
# The newest ServiceRoot namespace that declares the service's entity container.
_CONTAINER = "ServiceRoot.v1_19_0"

# schema file stem -> (versioned namespace, or None for unversioned collections)
_VERSIONS: dict[str, str | None] = {
    "ServiceRoot": "v1_20_0",
    "ComputerSystem": "v1_27_0",
    "ComputerSystemCollection": None,
    "Chassis": "v1_28_0",
    "ChassisCollection": None,
    "Manager": "v1_24_0",
    "ManagerCollection": None,
    "Sensor": "v1_12_0",
    "SensorCollection": None,
    "EnvironmentMetrics": "v1_5_0",
    "LogService": "v1_9_0",
    "LogServiceCollection": None,
    "LogEntry": "v1_21_0",
    "LogEntryCollection": None,
    "SessionService": "v1_2_0",
    "Session": "v1_8_0",
    "SessionCollection": None,
    "AccountService": "v1_18_1",
    "ManagerAccount": "v1_14_1",
    "ManagerAccountCollection": None,
    "Role": "v1_3_3",
    "RoleCollection": None,
    "ActionInfo": "v1_5_0",
    "PowerSubsystem": "v1_1_3",
    "PowerSupply": "v1_6_0",
    "PowerSupplyCollection": None,
    "ThermalSubsystem": "v1_5_0",
    "Fan": "v1_6_0",
    "FanCollection": None,
    "ManagerNetworkProtocol": "v1_12_0",
    "EventService": "v1_12_0",
    "EventDestination": "v1_16_0",
    "EventDestinationCollection": None,
    "Event": "v1_13_0",
    "UpdateService": "v1_17_0",
    "SoftwareInventory": "v1_13_0",
    "SoftwareInventoryCollection": None,
    "TaskService": "v1_3_0",
    "Task": "v1_7_4",
    "TaskCollection": None,
    "Message": "v1_3_0",
    "CertificateService": "v1_2_1",
    "CertificateLocations": "v1_0_4",
    "Certificate": "v1_11_0",
    "CertificateCollection": None,
    "Resource": "v1_23_0",
    "Control": "v1_7_0",
    "ControlCollection": None,
}


def odata_type(schema: str) -> str:
    """``#Namespace.vX_Y_Z.Type`` (or ``#Type.Type`` for a collection)."""
    version = _VERSIONS[schema]
    return f"#{schema}.{version}.{schema}" if version else f"#{schema}.{schema}"


def resource(schema: str, path: str, **fields: Any) -> dict[str, Any]:
    """The common head of a resource: type, id, context, then its own fields."""
    return {
        "@odata.type": odata_type(schema),
        "@odata.id": path,
        "@odata.context": f"{ROOT}/$metadata#{schema}.{schema}",
        **fields,
    }


def collection(schema: str, path: str, name: str, members: list[str]) -> dict[str, Any]:
    return resource(
        schema,
        path,
        Name=name,
        Members=[{"@odata.id": member} for member in members],
        **{"Members@odata.count": len(members)},
    )


def link(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def metadata_xml() -> str:
    """The CSDL ``$metadata`` document: a reference to each DMTF schema file used."""
    refs = []
    for schema, version in _VERSIONS.items():
        includes = f'    <edmx:Include Namespace="{schema}"/>\n'
        if version:
            includes += f'    <edmx:Include Namespace="{schema}.{version}"/>\n'
        if schema == "ServiceRoot":
            includes += f'    <edmx:Include Namespace="{_CONTAINER}"/>\n'
        refs.append(
            f'  <edmx:Reference Uri="{SCHEMAS}/{schema}_v1.xml">\n{includes}  </edmx:Reference>\n'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
        + "".join(refs)
        + "  <edmx:DataServices>\n"
        '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n'
        '      <EntityContainer Name="Service" '
        f'Extends="{_CONTAINER}.ServiceContainer"/>\n'
        "    </Schema>\n"
        "  </edmx:DataServices>\n"
        "</edmx:Edmx>\n"
    )


def schema_files() -> list[str]:
    """The CSDL files ``$metadata`` references, in its order."""
    return [f"{schema}_v1.xml" for schema in _VERSIONS]


@functools.lru_cache(maxsize=len(_VERSIONS))
def read_schema_file(name: str) -> bytes | None:
    """A bundled CSDL file by its name, None unless ``$metadata`` references it (blocking)."""
    if name not in schema_files():
        return None
    return resources.files("racklet.bmc").joinpath("schemas", name).read_bytes()
