"""The unit's side of peer-to-peer distribution: serve the payload it runs to its rack.

``GET /p2p/v1/targets/<sha256>`` on the agent's listener answers the payload of the slot this
OS booted, with Range requests, if ``<sha256>`` is that payload's (verified at boot: by TUF
as it streamed in, or re-hashed against the BMC's record before a cold boot). Only another
unit of the same rack may fetch it: the client certificate (rack CA, CRL followed by the
listener) must carry ``spiffe://<this rack>/unit/<another unit>``; anyone else gets 403. What
it serves is checked again by the fetching unit (piece by piece, then whole against TUF), so
a corrupted slot here wastes a peer's bandwidth and gets this unit dropped, nothing more.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from racklet.boot import P2P_PREFIX, BootedPayload, slot_payload
from racklet.log import get_logger
from racklet.net import parse_id, peer_identity, pem_identity


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def p2p_route(booted: BootedPayload, storage: Path) -> Route:
    """The route serving ``booted``'s payload from ``storage`` to the rack's other units."""
    own = parse_id(pem_identity(booted.identity.cert_pem))
    domain = own[0] if own is not None else None
    sha256 = booted.manifest.payload_sha256
    payload = slot_payload(storage, booted.slot)
    logger = get_logger("node-p2p", unit=booted.unit)

    async def serve(request: Request) -> Response:
        identity = peer_identity(request.scope)
        parsed = parse_id(identity)
        if (
            domain is None
            or parsed is None
            or parsed[:2] != (domain, "unit")
            or parsed[2] in (None, booted.unit)
        ):
            return _error(403, f"only the other units of this rack, not {identity or 'anonymous'}")
        if request.path_params["sha256"] != sha256:
            return _error(404, "this unit does not run that payload")
        logger.info(f"serving its payload to {parsed[2]} ({request.headers.get('range', 'whole')})")
        return FileResponse(payload, media_type="application/octet-stream")

    return Route(f"{P2P_PREFIX}{{sha256}}", serve, methods=["GET"])
