"""The DMTF schema versions this service implements, in one place.

Every resource names its ``@odata.type`` from :data:`TYPES`; the ``$metadata`` document is
generated from the same table, so the two cannot disagree. Versions are those of the DMTF
2025.4 CSDL (``shared/redfish/csdl``); every property the service emits exists in them.
The CSDL file of each is bundled (``racklet/bmc/schemas``, DMTF's BSD-3 licence beside them)
and served by the BMC itself (the ``root`` family's ``metadata``).
"""

from __future__ import annotations

from typing import Any

ROOT = "/redfish/v1"
SCHEMAS = f"{ROOT}/Schemas"
REDFISH_VERSION = "1.22.0"
# The newest ServiceRoot namespace that declares the service's entity container.
CONTAINER = "ServiceRoot.v1_19_0"

# schema file stem -> (versioned namespace, or None for unversioned collections)
SCHEMA_VERSIONS: dict[str, str | None] = {
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
    "EthernetInterface": "v1_12_4",
    "EthernetInterfaceCollection": None,
    "Processor": "v1_22_0",
    "ProcessorCollection": None,
    "Memory": "v1_23_0",
    "MemoryCollection": None,
    "Power": "v1_7_3",
    "Thermal": "v1_7_3",
    "MessageRegistryFile": "v1_1_5",
    "MessageRegistryFileCollection": None,
    "Resource": "v1_23_0",
    "Control": "v1_7_0",
    "ControlCollection": None,
}


def odata_type(schema: str) -> str:
    """``#Namespace.vX_Y_Z.Type`` (or ``#Type.Type`` for a collection)."""
    version = SCHEMA_VERSIONS[schema]
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
