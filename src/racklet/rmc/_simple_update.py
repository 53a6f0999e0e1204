"""``UpdateService.SimpleUpdate`` at the RMC: a BMC firmware image fetched from the rack's own
boot server, passed to a unit's BMC as a multipart push.

The RMC opens a connection only to an origin it was configured with
(:attr:`racklet.rmc.RmcSettings.update_origins`: the rack's boot server, the controller's
machine listener), over HTTPS, presenting its own client identity and pinning the server to
the controller's role identity; an ``ImageURI`` elsewhere (another host or port, ``http``,
credentials, a query, a path outside ``/boot/v1/targets/bmc-firmware/``) is a 400 before any
connection (a client cannot make the RMC reach anything else: no SSRF).

The RMC trusts nothing it fetches. It reads the TUF metadata from the same server
(``timestamp`` → its ``snapshot`` → ``targets`` and the ``bmc-firmware`` delegation, and
every root past the first) and sends it with the image as the push's ``OemParameters``
(the shape :func:`racklet.wire.firmware_oem_parameters` gives a pusher), so the unit's BMC
verifies metadata and image against the TUF root of its own trust bundle exactly as it does
an image pushed to it, and refuses anything else. Deliberately not here: a task of the RMC's
own; the fetch happens within the request and the answer is the BMC's (202 and its Task).
"""

from __future__ import annotations

import json
import re
import ssl
import tempfile
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from racklet.limits import InputRejected, parse_json
from racklet.wire import FIRMWARE_CHANNEL

ACTION = "UpdateService.SimpleUpdate"
TARGETS_PREFIX = "/boot/v1/targets/"
METADATA_PREFIX = "/boot/v1/metadata/"
MAX_METADATA_BYTES = 1024 * 1024
MAX_ROOTS = 32
"""Root versions fetched at most (the BMC's verifier takes no more metadata files)."""
_PARAMETERS = frozenset({"ImageURI", "TransferProtocol", "Targets", "@Redfish.OperationApplyTime"})
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
_HASHED = re.compile(r"[0-9a-f]{64}\.(.+)")


class Refused(Exception):
    """A SimpleUpdate the RMC does not carry out: (status, Base message id, its args)."""

    def __init__(self, status: int, message_id: str, *args: str) -> None:
        super().__init__(message_id, *args)
        self.status, self.message_id, self.args_ = status, message_id, args


@dataclass(frozen=True)
class Fetched:
    """What a SimpleUpdate fetched: the image (a temporary file) and its TUF metadata."""

    image: IO[bytes]
    filename: str
    oem: dict[str, Any]


def origin_of(url: str) -> str:
    """``https://host:port`` of a URL (the port made explicit)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def checked_image_uri(uri: Any, origins: tuple[str, ...]) -> tuple[str, str]:
    """(origin, TUF target path) of an allowed ``ImageURI``, or :class:`Refused` (400)."""
    refused = Refused(400, "ActionParameterValueError", "ImageURI", ACTION)
    if not isinstance(uri, str) or len(uri) > 2048:
        raise refused
    try:
        parts = urlsplit(uri)
        origin = origin_of(uri)
    except ValueError:
        raise refused from None
    if (
        parts.scheme != "https"
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or origin not in origins
        or not parts.path.startswith(f"{TARGETS_PREFIX}{FIRMWARE_CHANNEL}/")
    ):
        raise refused
    segments = parts.path.removeprefix(TARGETS_PREFIX).split("/")
    if len(segments) > 8 or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise refused  # no "..", no empty segment: the path names one published file
    hashed = _HASHED.fullmatch(segments[-1])
    if hashed is not None:  # consistent snapshots serve <sha256>.<name>; TUF names <name>
        segments[-1] = hashed.group(1)
    return origin, "/".join(segments)


class SimpleUpdateFetcher:
    """Fetches an allowed ``ImageURI`` and the TUF metadata that vouches for it."""

    def __init__(
        self, origins: tuple[str, ...], tls: ssl.SSLContext, max_image: int, timeout: float
    ) -> None:
        self.origins = tuple(origin_of(o) for o in origins)
        self._tls, self._max_image, self._timeout = tls, max_image, timeout

    async def fetch(self, uri: Any) -> Fetched:
        origin, target_path = checked_image_uri(uri, self.origins)
        try:
            async with httpx.AsyncClient(
                base_url=origin, verify=self._tls, timeout=self._timeout
            ) as http:
                oem = await self._metadata(http, target_path)
                image = await self._image(http, str(uri))
        except httpx.HTTPError as exc:
            raise Refused(503, "ServiceTemporarilyUnavailable", "30") from exc
        return Fetched(image, target_path.rsplit("/", 1)[-1], oem)

    async def _json(self, http: httpx.AsyncClient, name: str) -> Any:
        """A metadata file, None if the server has none by that name."""
        answer = await http.get(f"{METADATA_PREFIX}{name}")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise Refused(503, "ServiceTemporarilyUnavailable", "30")
        try:
            return parse_json(answer.content, max_bytes=MAX_METADATA_BYTES)
        except InputRejected:
            raise Refused(503, "ServiceTemporarilyUnavailable", "30") from None

    async def _metadata(self, http: httpx.AsyncClient, target_path: str) -> dict[str, Any]:
        """The ``OemParameters`` of a push of ``target_path``, read from the boot server.
        Their shape is checked only as far as needed to name the next file; the BMC
        verifies every signature."""
        unusable = Refused(503, "ServiceTemporarilyUnavailable", "30")
        timestamp = await self._json(http, "timestamp.json")
        try:
            files: dict[str, Any] = {"timestamp.json": timestamp}
            snapshot_name = f"{int(timestamp['signed']['meta']['snapshot.json']['version'])}"
            snapshot_name += ".snapshot.json"
            snapshot = files[snapshot_name] = await self._json(http, snapshot_name)
            for role in ("targets", FIRMWARE_CHANNEL):
                version = int(snapshot["signed"]["meta"][f"{role}.json"]["version"])
                files[f"{version}.{role}.json"] = await self._json(http, f"{version}.{role}.json")
        except (KeyError, TypeError, ValueError):
            raise unusable from None
        if any(document is None for document in files.values()):
            raise unusable
        for version in range(2, MAX_ROOTS + 2):  # every root past the first: rotations
            root = await self._json(http, f"{version}.root.json")
            if root is None:
                break
            files[f"{version}.root.json"] = root
        return {"Racklet": {"TargetPath": target_path, "TufMetadata": files}}

    async def _image(self, http: httpx.AsyncClient, uri: str) -> IO[bytes]:
        spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 (returned)
        try:
            async with http.stream("GET", uri) as answer:
                if answer.status_code == 404:
                    raise Refused(400, "ActionParameterValueError", "ImageURI", ACTION)
                if answer.status_code != 200:
                    raise Refused(503, "ServiceTemporarilyUnavailable", "30")
                size = 0
                async for chunk in answer.aiter_bytes(1024 * 1024):
                    size += len(chunk)
                    if size > self._max_image:
                        raise Refused(413, "PayloadTooLarge")
                    spool.write(chunk)
            spool.seek(0)
            return spool
        except BaseException:
            spool.close()
            raise


def parameters_of(body: dict[str, Any]) -> dict[str, Any]:
    """The action's parameters, each known (``Username``/``Password`` are not: the RMC sends
    no credentials to an origin), ``TransferProtocol`` HTTPS if given; :class:`Refused`."""
    for key in body:
        if key not in _PARAMETERS:
            raise Refused(400, "ActionParameterUnknown", ACTION, key)
    if "ImageURI" not in body:
        raise Refused(400, "ActionParameterMissing", ACTION, "ImageURI")
    protocol = body.get("TransferProtocol", "HTTPS")
    if protocol != "HTTPS":
        raise Refused(
            400, "ActionParameterValueNotInList", str(protocol), "TransferProtocol", ACTION
        )
    targets = body.get("Targets")
    if not isinstance(targets, list) or not targets:
        raise Refused(400, "ActionParameterMissing", ACTION, "Targets")
    return body


def push_files(fetched: Fetched, parameters: dict[str, Any]) -> dict[str, Any]:
    """The multipart parts of the push that carries a fetched image to a BMC."""
    return {
        "UpdateParameters": (None, json.dumps(parameters), "application/json"),
        "UpdateFile": (fetched.filename, fetched.image, "application/octet-stream"),
        "OemParameters": (None, json.dumps(fetched.oem), "application/json"),
    }
