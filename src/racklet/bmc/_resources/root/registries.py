"""``/redfish/v1/Registries``: the message registries a client needs to read this BMC's
messages that no DMTF registry covers (``Racklet.1.0``: the console lines' ``MessageId``
and the BMC's own start).
The DMTF registries (Base, ResourceEvent, ...) are DMTF's to publish and are not repeated."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.odata import collection
from racklet.bmc._http.registry import RACKLET, RACKLET_VERSION, RedfishErrorReply, racklet_registry
from racklet.bmc._http.responses import page, respond
from racklet.bmc._http.uris import REGISTRIES

FILE = f"{REGISTRIES}/{RACKLET}"
DOCUMENT = f"{FILE}/Racklet.{RACKLET_VERSION}.json"


class MessageRegistryFile(Resource):
    redfish_type = "MessageRegistryFile"

    Id: str
    Name: str
    Description: str
    Languages: list[str]
    Registry: str
    Location: list[dict[str, str]]


async def registries(request: Request) -> Response:
    members = page(request, [FILE])
    return respond(
        collection("MessageRegistryFileCollection", REGISTRIES, "Registry File Collection", members)
    )


async def registry_file(request: Request) -> Response:
    if request.path_params["registry"] != RACKLET:
        raise RedfishErrorReply(
            404, "ResourceNotFound", "MessageRegistryFile", request.path_params["registry"]
        )
    declared = MessageRegistryFile(
        Id=RACKLET,
        Name="Racklet Message Registry File",
        Description="Racklet's own messages (console lines, the BMC's start)",
        Languages=["en"],
        Registry=RACKLET,
        Location=[{"Language": "en", "Uri": DOCUMENT}],
    )
    return respond(declared.body(FILE))


async def document(request: Request) -> Response:
    return respond(racklet_registry())
