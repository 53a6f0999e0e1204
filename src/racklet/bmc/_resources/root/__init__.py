"""The open entry points: ``/redfish``, the ServiceRoot, the OData service document and
``$metadata`` and the CSDL files it references (``metadata``). Nothing here reveals more
than where the resources are and what DMTF published about their types."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from racklet.bmc._http import uris
from racklet.bmc._http.declared import Resource
from racklet.bmc._http.odata import REDFISH_VERSION, ROOT, SCHEMAS, link
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import ODATA_HEADERS, respond, route
from racklet.bmc._resources.root import registries
from racklet.bmc._resources.root.metadata import metadata_xml, read_schema_file
from racklet.bmc._state.context import BmcContext

FAMILIES = {
    "Systems": uris.SYSTEMS,
    "Chassis": uris.CHASSIS,
    "Managers": uris.MANAGERS,
    "SessionService": uris.SESSION_SERVICE,
    "AccountService": uris.ACCOUNT_SERVICE,
    "EventService": uris.EVENT_SERVICE,
    "UpdateService": uris.UPDATE_SERVICE,
    "Tasks": uris.TASK_SERVICE,
    "CertificateService": uris.CERTIFICATE_SERVICE,
    "Registries": uris.REGISTRIES,
}
_FEATURES = {
    "ExpandQuery": {"ExpandAll": False, "Levels": False, "Links": False, "NoLinks": False},
    "FilterQuery": False,
    "SelectQuery": False,
    "OnlyMemberQuery": False,
    "ExcerptQuery": False,
    "TopSkipQuery": True,
    "MultipleHTTPRequests": False,
}


class ServiceRoot(Resource):
    redfish_type = "ServiceRoot"

    Id: str = "RootService"
    Name: str = "Racklet BMC"
    RedfishVersion: str
    UUID: str
    Vendor: str = "Racklet"
    Product: str = "Racklet BMC"
    ProtocolFeaturesSupported: dict[str, Any]
    Links: dict[str, Any]
    Systems: dict[str, str]
    Chassis: dict[str, str]
    Managers: dict[str, str]
    SessionService: dict[str, str]
    AccountService: dict[str, str]
    EventService: dict[str, str]
    UpdateService: dict[str, str]
    Tasks: dict[str, str]
    CertificateService: dict[str, str]
    Registries: dict[str, str]


async def versions(request: Request) -> Response:
    return respond({"v1": f"{ROOT}/"})


async def service_root(ctx: BmcContext, request: Request) -> Response:
    declared = ServiceRoot(
        Id="RootService",
        Name="Racklet BMC",
        RedfishVersion=REDFISH_VERSION,
        UUID=ctx.uuid,
        Vendor="Racklet",
        Product="Racklet BMC",
        ProtocolFeaturesSupported=_FEATURES,
        Links={"Sessions": link(uris.SESSIONS)},
        **{name: link(path) for name, path in FAMILIES.items()},
    )
    return respond(declared.body(f"{ROOT}/"))


async def odata(request: Request) -> Response:
    value = [{"name": "Service", "kind": "Singleton", "url": f"{ROOT}/"}]
    value += [{"name": n, "kind": "Singleton", "url": p} for n, p in FAMILIES.items()]
    return respond({"@odata.context": f"{ROOT}/$metadata", "value": value})


async def metadata(request: Request) -> Response:
    return Response(
        metadata_xml(), media_type="application/xml;charset=utf-8", headers=ODATA_HEADERS
    )


async def schema_file(request: Request) -> Response:
    name = request.path_params["name"]
    body = await asyncio.to_thread(read_schema_file, name)
    if body is None:
        raise RedfishErrorReply(404, "ResourceNotFound", "Schema", name)
    return Response(body, media_type="application/xml;charset=utf-8", headers=ODATA_HEADERS)


def routes(ctx: BmcContext) -> list[BaseRoute]:
    root = partial(service_root, ctx)
    return [
        route("/redfish", GET=versions),
        route("/redfish/", GET=versions),
        route(ROOT, GET=root),
        route(f"{ROOT}/", GET=root),
        route(f"{ROOT}/odata", GET=odata),
        route(f"{ROOT}/$metadata", GET=metadata),
        route(f"{SCHEMAS}/{{name}}", GET=schema_file),
        route(uris.REGISTRIES, GET=registries.registries),
        route(f"{uris.REGISTRIES}/{{registry}}", GET=registries.registry_file),
        route(registries.DOCUMENT, GET=registries.document),
    ]
