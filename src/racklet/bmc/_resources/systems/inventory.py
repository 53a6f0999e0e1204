"""``Systems/<unit>/Processors``, ``Memory`` and ``EthernetInterfaces``: what the unit is made
of, from its board's identity (:class:`racklet.hw.BoardIdentity`). A board that cannot say
lists none of them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.odata import collection
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, respond
from racklet.bmc._resources.common import NIC, interface
from racklet.bmc._state.context import BmcContext
from racklet.hw import BoardIdentity

CPU, RAM = "cpu0", "ram0"


class Processor(Resource):
    redfish_type = "Processor"

    Id: str = CPU
    Name: str
    ProcessorType: str = "CPU"
    ProcessorArchitecture: str = "ARM"
    InstructionSet: str = "ARM-A64"
    Model: str
    TotalCores: int
    TotalThreads: int
    Status: dict[str, str]


class Memory(Resource):
    redfish_type = "Memory"

    Id: str = RAM
    Name: str
    MemoryType: str = "DRAM"
    CapacityMiB: int
    Status: dict[str, str]


def _identity(ctx: BmcContext, request: Request) -> BoardIdentity:
    if request.path_params["system_id"] != ctx.unit:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "ComputerSystem", request.path_params["system_id"]
        )
    if ctx.board.identity is None:
        raise RedfishErrorReply(404, "ResourceNotFound", "Resource", request.url.path)
    return ctx.board.identity


def _status(ctx: BmcContext) -> dict[str, str]:
    return {"State": "Enabled", "Health": "OK"} if ctx.present() else {"State": "Absent"}


def summaries(ctx: BmcContext) -> dict[str, Any]:
    """The ComputerSystem's identity, summaries and links to these collections."""
    identity = ctx.board.identity
    if identity is None:
        return {}
    path = ctx.system_path
    found: dict[str, Any] = {}
    if identity.bootloader_version is not None:
        # The boot firmware before any OS: on a Pi, its EEPROM bootloader (no BIOS).
        found["BiosVersion"] = identity.bootloader_version
    if identity.part_number is not None:
        found["PartNumber"] = identity.part_number
    return found | {
        "Manufacturer": identity.manufacturer,
        "Model": identity.model,
        "SerialNumber": identity.serial_number,
        "ProcessorSummary": {
            "Count": 1,
            "CoreCount": identity.processor_cores,
            "Model": identity.processor_model,
        },
        "MemorySummary": {"TotalSystemMemoryGiB": round(identity.memory_mib / 1024, 3)},
        "Processors": {"@odata.id": f"{path}/Processors"},
        "Memory": {"@odata.id": f"{path}/Memory"},
        "EthernetInterfaces": {"@odata.id": f"{path}/EthernetInterfaces"},
    }


async def processors(ctx: BmcContext, request: Request) -> Response:
    _identity(ctx, request)
    path = f"{ctx.system_path}/Processors"
    members = page(request, [f"{path}/{CPU}"])
    return respond(collection("ProcessorCollection", path, "Processors", members))


async def processor(ctx: BmcContext, request: Request) -> Response:
    identity = _identity(ctx, request)
    if request.path_params["item_id"] != CPU:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "Processor", request.path_params["item_id"]
        )
    declared = Processor(
        Id=CPU,
        Name=f"Processor of {ctx.unit}",
        Model=identity.processor_model,
        TotalCores=identity.processor_cores,
        TotalThreads=identity.processor_cores,  # Arm cores: one thread each
        Status=_status(ctx),
    )
    return respond(declared.body(f"{ctx.system_path}/Processors/{CPU}"))


async def memories(ctx: BmcContext, request: Request) -> Response:
    _identity(ctx, request)
    path = f"{ctx.system_path}/Memory"
    members = page(request, [f"{path}/{RAM}"])
    return respond(collection("MemoryCollection", path, "Memory", members))


async def memory(ctx: BmcContext, request: Request) -> Response:
    identity = _identity(ctx, request)
    if request.path_params["item_id"] != RAM:
        raise RedfishErrorReply(404, "ResourceNotFound", "Memory", request.path_params["item_id"])
    declared = Memory(
        Id=RAM,
        Name=f"Memory of {ctx.unit}",
        MemoryType="DRAM",
        CapacityMiB=identity.memory_mib,
        Status=_status(ctx),
    )
    return respond(declared.body(f"{ctx.system_path}/Memory/{RAM}"))


async def interfaces(ctx: BmcContext, request: Request) -> Response:
    _identity(ctx, request)
    path = f"{ctx.system_path}/EthernetInterfaces"
    members = page(request, [f"{path}/{NIC}"])
    return respond(collection("EthernetInterfaceCollection", path, "Ethernet interfaces", members))


async def ethernet(ctx: BmcContext, request: Request) -> Response:
    identity = _identity(ctx, request)
    if request.path_params["item_id"] != NIC:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "EthernetInterface", request.path_params["item_id"]
        )
    path = f"{ctx.system_path}/EthernetInterfaces"
    up = ctx.present() and ctx.power.power_state() == "On"
    name = f"Ethernet of {ctx.unit}"
    return respond(interface(path, name, identity.unit_mac, ctx.unit, up, []))
