"""The RMC's Redfish app: one endpoint for the rack, aggregating the unit BMCs.

Served here: the ServiceRoot, the OData service document and ``$metadata``, the RMC's
SessionService, AccountService and the EventLog of its logins, all from the BMC's code
(:mod:`racklet.bmc.login`: accounts, sessions, login throttling and privileges are one
implementation); the CertificateService for its own HTTPS certificate, the BMC's code too
(:mod:`racklet.bmc.certificates`); its own Manager (``Managers/rmc``, :mod:`._manager`); the
AggregationService with one AggregationSource per BMC and its Reset action; the EventService
relaying every BMC's events (:mod:`._events`); the UpdateService, TaskService and
Registries (:mod:`._services`); and the merged Systems, Chassis, Managers, firmware
inventory and task collections (each BMC asked concurrently; a BMC that does not answer is
left out and logged). Any request for a
prefixed member (``/redfish/v1/Systems/unit-1_unit-1/...``) is forwarded to its BMC with the
prefix removed, and the answer comes back with the prefix added to every URI in it
(``racklet.rmc._uris``). The RMC logs in to every BMC with its own client certificate (an
Operator there), never with a BMC password.
Every state-changing request is audited (:mod:`racklet.audit`); a forwarded one carries its
request id to the BMC (``X-Request-Id``), so the RMC's line and the BMC's line share it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from racklet.audit import REQUEST_ID_HEADER, AuditLog, AuditMiddleware, redfish_verb
from racklet.bmc import certificates as certificate_service
from racklet.bmc.login import (
    Accounts,
    AuthMiddleware,
    EventBus,
    RedfishErrorReply,
    SessionStore,
    account_routes,
    event_log_routes,
    redfish_error,
    session_routes,
)
from racklet.limits import InputRejected, parse_json
from racklet.log import ContextLogger
from racklet.rmc import _metadata, _uris
from racklet.rmc._events import EventFanIn
from racklet.rmc._manager import MANAGER, ManagerResources
from racklet.rmc._messages import JSON_TYPE, error, json_response
from racklet.rmc._rack_routes import RACK, RackResources, metrics_route
from racklet.rmc._satellite import SatelliteClient
from racklet.rmc._services import MAX_PUSH, MULTIPART, PUSH_TIMEOUT, ServiceResources
from racklet.rmc._simple_update import SimpleUpdateFetcher
from racklet.rmc.errors import SatelliteUnreachable

ROOT = _uris.ROOT
SESSION_SERVICE = f"{ROOT}/SessionService"
ACCOUNT_SERVICE = f"{ROOT}/AccountService"
REALM = 'Basic realm="Racklet RMC"'
AGGREGATION = f"{ROOT}/AggregationService"
SOURCES = f"{AGGREGATION}/AggregationSources"
RESET_ACTION = "AggregationService.Reset"
MAX_BODY = 64 * 1024
_COLLECTION_TYPES = {
    "Systems": ("ComputerSystemCollection", "Computer System Collection"),
    "Chassis": ("ChassisCollection", "Chassis Collection"),
    "Managers": ("ManagerCollection", "Manager Collection"),
}
# Response headers of a BMC that mean the same through the RMC.
_PASSED_HEADERS = ("etag", "allow", "link", "retry-after", "odata-version", "cache-control")
_FORWARDED_HEADERS = ("content-type", "if-match", "if-none-match")


def _link(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def _collection(odata_type: str, path: str, name: str, members: list[str]) -> dict[str, Any]:
    return {
        "@odata.type": f"#{odata_type}.{odata_type}",
        "@odata.id": path,
        "Name": name,
        "Members": [_link(m) for m in members],
        "Members@odata.count": len(members),
    }


async def _body(request: Request) -> bytes | Response:
    """The request body, or the error response for one that is too large."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return error(413, "PayloadTooLarge")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_object(request: Request) -> dict[str, Any] | Response:
    raw = await _body(request)
    if isinstance(raw, Response):
        return raw
    try:
        body = parse_json(raw, max_bytes=MAX_BODY)
    except InputRejected:
        body = None  # too large was refused while reading; all else is malformed to Redfish
    return body if isinstance(body, dict) else error(400, "MalformedJSON")


class Aggregator:
    """The routes of the RMC over its satellite clients."""

    def __init__(
        self, clients: dict[str, SatelliteClient], service_uuid: str, log: ContextLogger
    ) -> None:
        self.own_chassis: list[str] = []
        """The RMC's own members of ``Chassis`` (the rack enclosure, when it has a board)."""
        self.certificates = False
        """Whether the RMC serves a CertificateService (it knows its listener's certificate)."""
        self._clients = clients
        self._uuid = service_uuid
        self._log = log

    # -- the RMC's own resources --------------------------------------------------------------

    async def redfish(self, request: Request) -> Response:
        return json_response({"v1": ROOT + "/"})

    async def service_root(self, request: Request) -> Response:
        return json_response(
            {
                "@odata.type": "#ServiceRoot.v1_20_0.ServiceRoot",
                "@odata.id": ROOT,
                "Id": "RootService",
                "Name": "Racklet RMC",
                "RedfishVersion": "1.21.0",
                "UUID": self._uuid,
                "Systems": _link(f"{ROOT}/Systems"),
                "Chassis": _link(f"{ROOT}/Chassis"),
                "Managers": _link(f"{ROOT}/Managers"),
                "SessionService": _link(SESSION_SERVICE),
                "AccountService": _link(ACCOUNT_SERVICE),
                "AggregationService": _link(AGGREGATION),
                "EventService": _link(f"{ROOT}/EventService"),
                "UpdateService": _link(f"{ROOT}/UpdateService"),
                "Tasks": _link(f"{ROOT}/TaskService"),
                "Registries": _link(f"{ROOT}/Registries"),
                "TelemetryService": _link(f"{ROOT}/TelemetryService"),
                **(
                    {"CertificateService": _link(f"{ROOT}/CertificateService")}
                    if self.certificates
                    else {}
                ),
                "Product": "Racklet RMC",
                "Vendor": "Racklet",
                "Links": {"Sessions": _link(f"{SESSION_SERVICE}/Sessions")},
                "ProtocolFeaturesSupported": {
                    "ExpandQuery": {"ExpandAll": False, "Levels": False},
                    "FilterQuery": False,
                    "SelectQuery": False,
                    "OnlyMemberQuery": False,
                    "MultipleHTTPRequests": True,
                },
            }
        )

    async def odata(self, request: Request) -> Response:
        names = [
            "Systems",
            "Chassis",
            "Managers",
            "SessionService",
            "AccountService",
            "AggregationService",
            "EventService",
            "UpdateService",
            "Tasks",
            "Registries",
            "TelemetryService",
            *(["CertificateService"] if self.certificates else []),
        ]
        return json_response(
            {
                "@odata.context": f"{ROOT}/$metadata",
                "value": [{"name": n, "kind": "Singleton", "url": f"{ROOT}/{n}"} for n in names],
            }
        )

    async def aggregation_service(self, request: Request) -> Response:
        return json_response(
            {
                "@odata.type": "#AggregationService.v1_0_3.AggregationService",
                "@odata.id": AGGREGATION,
                "Id": "AggregationService",
                "Name": "Aggregation Service",
                "Description": "One Redfish endpoint for every unit BMC of the rack",
                "ServiceEnabled": True,
                "Status": {"State": "Enabled", "Health": "OK"},
                "AggregationSources": _link(SOURCES),
                "Actions": {
                    f"#{RESET_ACTION}": {"target": f"{AGGREGATION}/Actions/{RESET_ACTION}"}
                },
            }
        )

    async def sources(self, request: Request) -> Response:
        members = [f"{SOURCES}/{name}" for name in self._clients]
        return json_response(
            _collection("AggregationSourceCollection", SOURCES, "Aggregation Sources", members)
        )

    async def source(self, request: Request) -> Response:
        name = request.path_params["name"]
        client = self._clients.get(name)
        if client is None:
            return error(404, "ResourceNotFound", "AggregationSource", name)
        paths = [f"{ROOT}/{collection}" for collection in _uris.AGGREGATED]
        found = await asyncio.gather(*(self._members(name, path) for path in paths))
        return json_response(
            {
                "@odata.type": "#AggregationSource.v1_4_3.AggregationSource",
                "@odata.id": f"{SOURCES}/{name}",
                "Id": name,
                "Name": f"BMC of {name}",
                "HostName": client.source.url,
                "Links": {"ResourcesAccessed": [_link(uri) for uris in found for uri in uris]},
            }
        )

    async def reset(self, request: Request) -> Response:
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        targets, reset_type = body.get("TargetURIs"), body.get("ResetType")
        if not isinstance(targets, list) or not targets:
            return error(400, "PropertyMissing", "TargetURIs")
        if not isinstance(reset_type, str):
            return error(400, "PropertyMissing", "ResetType")
        systems: list[tuple[str, str]] = []
        for target in targets:
            uri = target.get("@odata.id") if isinstance(target, dict) else target
            found = _uris.member(uri, "Systems") if isinstance(uri, str) else None
            if found is None or found[0] not in self._clients:
                return error(404, "ResourceNotFound", "ComputerSystem", str(uri))
            systems.append(found)
        return await self._reset_systems(request, systems, reset_type)

    async def reset_every_unit(self, request: Request, reset_type: str) -> Response:
        """``Chassis.Reset`` of the rack: every unit's systems, in slot order."""
        found = await asyncio.gather(
            *(self._members(source, f"{ROOT}/Systems") for source in self._clients)
        )
        systems = [_uris.member(uri, "Systems") for uris in found for uri in uris]
        return await self._reset_systems(request, [s for s in systems if s], reset_type)

    async def _reset_systems(
        self, request: Request, systems: list[tuple[str, str]], reset_type: str
    ) -> Response:
        payload = json.dumps({"ResetType": reset_type}).encode()
        for source, path in systems:
            # One at a time, in order: a rack powers up unit by unit, not all at once.
            answer = await self._forward(
                source,
                "POST",
                f"{path}/Actions/ComputerSystem.Reset",
                payload,
                {
                    "content-type": "application/json",
                    REQUEST_ID_HEADER: request.scope.get("state", {}).get("request_id", ""),
                },
            )
            if answer.status_code >= 400:
                return answer
        return Response(status_code=204, headers={"OData-Version": "4.0"})

    async def unit_links(self) -> dict[str, list[str]]:
        """Every unit's chassis and systems as the aggregate shows them (``Chassis/rack``)."""
        names = ("Chassis", "Systems")
        found = await asyncio.gather(
            *(self._members(s, f"{ROOT}/{name}") for name in names for s in self._clients)
        )
        count = len(self._clients)
        return {
            name: [uri for uris in found[i * count : (i + 1) * count] for uri in uris]
            for i, name in enumerate(names)
        }

    async def push_update(self, source: str, files: dict[str, Any], request_id: str) -> Response:
        """Pass a multipart push on to the BMC of ``source`` (its own push URI)."""
        client = self._clients.get(source)
        if client is None:
            return error(404, "ResourceNotFound", "AggregationSource", source)
        try:
            answer = await client.request("GET", f"{ROOT}/UpdateService")
            service = answer.json() if answer.status_code == 200 else {}
        except (SatelliteUnreachable, ValueError) as exc:
            self._log.warning(f"push for {source} not passed on: {exc}")
            return error(502, "ServiceTemporarilyUnavailable", "5", headers={"Retry-After": "5"})
        push_uri = service.get("MultipartHttpPushUri") if isinstance(service, dict) else None
        if not isinstance(push_uri, str) or not push_uri.startswith(ROOT + "/"):
            return error(404, "ResourceNotFound", "MultipartHttpPushUri", source)
        return await self._forward(
            source,
            "POST",
            push_uri,
            None,
            {REQUEST_ID_HEADER: request_id} if request_id else {},
            files=files,
            answer_within=PUSH_TIMEOUT,
        )

    # -- aggregated collections and the proxy ------------------------------------------------

    def _contained(self, document: Any, path: str) -> None:
        """A unit's chassis is in the rack: add ``Links.ContainedBy`` (when the RMC has it)."""
        if RACK not in self.own_chassis or not isinstance(document, dict):
            return
        if document.get("@odata.type", "").startswith("#Chassis.") and path.count("/") == 4:
            links = document.setdefault("Links", {})
            if isinstance(links, dict):
                links.setdefault("ContainedBy", _link(RACK))

    async def collection(self, request: Request) -> Response:
        name = request.url.path.rstrip("/").rsplit("/", 1)[1]
        odata_type, title = _COLLECTION_TYPES[name]
        path = f"{ROOT}/{name}"
        answers = await asyncio.gather(
            *(self._members(source, path) for source in self._clients),
        )
        members = [member for answer in answers for member in answer]
        if name == "Managers":
            members.insert(0, MANAGER)
        if name == "Chassis":
            members[:0] = self.own_chassis
        return json_response(_collection(odata_type, path, title, members))

    async def _members(self, source: str, path: str) -> list[str]:
        try:
            response = await self._clients[source].request("GET", path)
            body = response.json() if response.status_code == 200 else None
        except (SatelliteUnreachable, ValueError) as exc:
            self._log.warning(f"{path} of {source} left out: {exc}")
            return []
        members = body.get("Members") if isinstance(body, dict) else None
        if not isinstance(members, list):
            self._log.warning(f"{path} of {source} left out: HTTP {response.status_code}")
            return []
        found = [m.get("@odata.id") for m in members if isinstance(m, dict)]
        return [_uris.add_prefix(uri, source) for uri in found if isinstance(uri, str)]

    async def proxy(self, request: Request) -> Response:
        found = _uris.route(request.url.path)
        if found is None or found[0] not in self._clients:
            return error(404, "ResourceNotFound", "Resource", request.url.path)
        source, local = found
        content: bytes | None = None
        if request.method in ("POST", "PATCH", "PUT"):
            raw = await _body(request)
            if isinstance(raw, Response):
                return raw
            content = raw
            if raw.strip() and "json" in request.headers.get("content-type", "json"):
                try:
                    rewritten = _uris.strip_document(parse_json(raw, max_bytes=MAX_BODY), source)
                except InputRejected:
                    return error(400, "MalformedJSON")
                content = json.dumps(rewritten).encode()
        headers = {k: v for k, v in request.headers.items() if k in _FORWARDED_HEADERS}
        request_id = request.scope.get("state", {}).get("request_id")
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        if request.url.query:
            local = f"{local}?{request.url.query}"
        return await self._forward(source, request.method, local, content, headers)

    async def _forward(
        self,
        source: str,
        method: str,
        path: str,
        content: bytes | None,
        headers: dict[str, str],
        *,
        files: dict[str, Any] | None = None,
        answer_within: float | None = None,
    ) -> Response:
        try:
            answer = await self._clients[source].request(
                method, path, content, headers, files=files, answer_within=answer_within
            )
        except SatelliteUnreachable as exc:
            self._log.warning(str(exc))
            return error(502, "ServiceTemporarilyUnavailable", "5", headers={"Retry-After": "5"})
        if answer.status_code == 401:
            self._log.error(f"BMC {source} refused the RMC's credentials")
            return error(502, "ResourceAtUriUnauthorized", path, "401 Unauthorized")
        passed = {k: v for k, v in answer.headers.items() if k in _PASSED_HEADERS}
        if "location" in answer.headers:
            passed["Location"] = _uris.add_prefix(answer.headers["location"], source)
        if "json" in answer.headers.get("content-type", "") and answer.content:
            try:
                document = _uris.prefix_document(answer.json(), source)
            except ValueError:
                return error(502, "InternalError")
            self._contained(document, path)
            payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
            return Response(payload, answer.status_code, headers=passed, media_type=JSON_TYPE)
        media = answer.headers.get("content-type")
        return Response(answer.content, answer.status_code, headers=passed, media_type=media)


def build_app(
    aggregator: Aggregator,
    accounts: Accounts,
    sessions: SessionStore,
    events: EventBus,
    manager: ManagerResources,
    fan_in: EventFanIn,
    audit: AuditLog | None = None,
    rack: RackResources | None = None,
    certificates: certificate_service.CertificateStore | None = None,
    cert_roles: dict[str, str] | None = None,
    fetcher: SimpleUpdateFetcher | None = None,
) -> Starlette:
    """The RMC's routes; accounts, sessions, privileges, the EventLog and the
    CertificateService are the BMC's code. ``cert_roles`` maps client-certificate role
    identities to roles (the controller's, for renewing the RMC's certificate)."""
    a = aggregator
    a.certificates = certificates is not None
    if rack is not None:
        a.own_chassis = [RACK]
        rack.unit_links = a.unit_links
        rack.reset_units = a.reset_every_unit
    services = ServiceResources(list(a._clients), a._members, a.push_update, fetcher)
    all_methods = ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"]
    routes = [
        Route("/redfish", a.redfish, methods=["GET"]),
        Route(ROOT, a.service_root, methods=["GET"]),
        Route(f"{ROOT}/", a.service_root, methods=["GET"]),
        Route(f"{ROOT}/odata", a.odata, methods=["GET"]),
        *_metadata.routes(),
        *session_routes(sessions, accounts, a._log),
        *account_routes(accounts, sessions, a._log),
        *manager.routes(),
        *(certificate_service.routes(a._log, certificates) if certificates else []),
        *event_log_routes(MANAGER, events, a._log, "RMC"),
        *fan_in.routes(),
        *services.routes(),
        Route(AGGREGATION, a.aggregation_service, methods=["GET"]),
        Route(f"{AGGREGATION}/Actions/{RESET_ACTION}", a.reset, methods=["POST"]),
        Route(SOURCES, a.sources, methods=["GET"]),
        Route(SOURCES + "/{name}", a.source, methods=["GET"]),
        *[Route(f"{ROOT}/{c}", a.collection, methods=["GET"]) for c in _uris.AGGREGATED],
        metrics_route(None if rack is None else rack.monitor),
        *([] if rack is None else rack.routes()),
        *[
            Route(f"{ROOT}/{c}/{{member}}{{rest:path}}", a.proxy, methods=all_methods)
            for c in (*_uris.AGGREGATED, *_uris.NESTED)
        ],
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "ResourceNotFound", "Resource", request.url.path)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error(405, "OperationNotAllowed")

    async def crashed(request: Request, exc: Exception) -> Response:
        a._log.exception("request failed", exc_info=exc)
        return error(500, "InternalError")

    return Starlette(
        routes=routes,
        middleware=[
            *(
                []
                if audit is None
                else [
                    Middleware(AuditMiddleware, audit=audit, component="rmc", describe=redfish_verb)
                ]
            ),
            Middleware(_BodyLimit),
            Middleware(
                AuthMiddleware,
                accounts=accounts,
                sessions=sessions,
                cert_roles=cert_roles,
                realm=REALM,
            ),
        ],
        exception_handlers={
            RedfishErrorReply: redfish_error,
            404: not_found,
            405: not_allowed,
            Exception: crashed,
        },
    )


class _BodyLimit:
    """Keeps every request body within :data:`MAX_BODY` (an update push within
    :data:`MAX_PUSH`) before anything reads it (a login is unauthenticated): a larger declared
    length is a 413, a chunked body is cut off there (and then fails to parse: a 400)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = MAX_PUSH if scope.get("path") == MULTIPART else MAX_BODY
        length = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > limit:
            await error(413, "PayloadTooLarge")(scope, receive, send)
            return
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            if seen > limit:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        await self._app(scope, capped, send)
