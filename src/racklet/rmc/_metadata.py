"""The RMC's OData ``$metadata``: where the schema of each type it serves is published.

Open, like the ServiceRoot (``racklet.bmc.login``'s middleware lets ``$metadata`` through
without a session). Each type refers to DMTF's published CSDL file
(``http://redfish.dmtf.org/schemas/v1/<Type>_v1.xml``); the RMC bundles no copies, as the
BMC does for its own types, because it forwards most of the types it shows.
"""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.rmc import _uris
from racklet.rmc._messages import ODATA_HEADERS

DMTF = "http://redfish.dmtf.org/schemas/v1"
TYPES = (
    "ServiceRoot",
    "AccountService",
    "ManagerAccount",
    "ManagerAccountCollection",
    "Role",
    "RoleCollection",
    "SessionService",
    "Session",
    "SessionCollection",
    "AggregationService",
    "AggregationSource",
    "AggregationSourceCollection",
    "ComputerSystem",
    "ComputerSystemCollection",
    "Chassis",
    "ChassisCollection",
    "Manager",
    "ManagerCollection",
    "ManagerNetworkProtocol",
    "EthernetInterface",
    "EthernetInterfaceCollection",
    "Certificate",
    "CertificateCollection",
    "CertificateService",
    "CertificateLocations",
    "ActionInfo",
    "LogService",
    "LogServiceCollection",
    "LogEntry",
    "LogEntryCollection",
    "EventService",
    "EventDestinationCollection",
    "Event",
    "UpdateService",
    "SoftwareInventory",
    "SoftwareInventoryCollection",
    "TaskService",
    "Task",
    "TaskCollection",
    "MessageRegistryFile",
    "MessageRegistryFileCollection",
    "TelemetryService",
    "Power",
    "Thermal",
    "ThermalSubsystem",
    "Fan",
    "FanCollection",
    "Control",
    "ControlCollection",
    "EnvironmentMetrics",
    "Message",
    "Resource",
)


@functools.cache
def metadata_xml() -> str:
    refs = "".join(
        f'  <edmx:Reference Uri="{DMTF}/{name}_v1.xml">\n'
        f'    <edmx:Include Namespace="{name}"/>\n'
        + (f'    <edmx:Include Namespace="{name}.v1_0_0"/>\n' if name == "ServiceRoot" else "")
        + "  </edmx:Reference>\n"
        for name in TYPES
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
        + refs
        + "  <edmx:DataServices>\n"
        '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n'
        '      <EntityContainer Name="Service" Extends="ServiceRoot.v1_0_0.ServiceContainer"/>\n'
        "    </Schema>\n"
        "  </edmx:DataServices>\n"
        "</edmx:Edmx>\n"
    )


async def metadata(request: Request) -> Response:
    return Response(
        metadata_xml(), media_type="application/xml;charset=utf-8", headers=ODATA_HEADERS
    )


def routes() -> list[Route]:
    return [Route(f"{_uris.ROOT}/$metadata", metadata, methods=["GET"])]
