"""The RMC's side of one unit BMC: where it is, and a Redfish session to it over HTTPS.

The client trusts only the rack CA, logs in lazily with a Redfish session, logs in again
once when the token has expired (401), and hands back raw responses: the proxy passes a
BMC's status, ETag and error body through, so it must not turn them into exceptions.
Transport failures become :class:`SatelliteUnreachable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
from dataclasses import dataclass, field

import httpx

from racklet.rmc.errors import RmcConfigError, SatelliteUnreachable

SESSIONS = "/redfish/v1/SessionService/Sessions"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


@dataclass(frozen=True)
class AggregationSource:
    """One unit BMC the RMC aggregates: its prefix name, Redfish URL and credentials."""

    name: str
    """The member-ID prefix (``unit-1`` → ``/redfish/v1/Systems/unit-1_unit-1``)."""
    url: str
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise RmcConfigError(
                f"aggregation source name {self.name!r}: use letters, digits, '.' and '-'"
            )
        if not self.url.startswith("https://"):
            raise RmcConfigError(f"aggregation source {self.name}: {self.url} is not HTTPS")


class SatelliteClient:
    def __init__(
        self, source: AggregationSource, ssl_context: ssl.SSLContext, timeout: float
    ) -> None:
        self.source = source
        self._http = httpx.AsyncClient(
            base_url=source.url.rstrip("/"),
            verify=ssl_context,
            timeout=timeout,
            headers={"Accept": "application/json"},
        )
        self._token: str | None = None
        self._session: str | None = None
        self._lock = asyncio.Lock()

    async def _send(
        self, method: str, path: str, content: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        try:
            return await self._http.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise SatelliteUnreachable(
                f"BMC {self.source.name} ({self.source.url}): {type(exc).__name__}: "
                f"{exc or 'no answer'}"
            ) from exc

    async def _login(self, stale: str | None) -> str | None:
        async with self._lock:
            if self._token is not None and self._token != stale:
                return self._token
            credentials = {"UserName": self.source.username, "Password": self.source.password}
            response = await self._send(
                "POST",
                SESSIONS,
                json.dumps(credentials).encode(),
                {"Content-Type": "application/json"},
            )
            self._token = response.headers.get("X-Auth-Token") if response.is_success else None
            self._session = response.headers.get("Location")
            return self._token

    async def request(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request in the RMC's session; a 401 that survives a new login is returned."""
        headers = dict(headers or {})
        token = self._token or await self._login(None)
        if token:
            headers["X-Auth-Token"] = token
        response = await self._send(method, path, content, headers)
        if response.status_code == 401:
            token = await self._login(token)
            if token:
                headers["X-Auth-Token"] = token
                response = await self._send(method, path, content, headers)
        return response

    async def aclose(self) -> None:
        """Log out (best effort: the BMC may be gone) and close the connections."""
        if self._token and self._session:
            with contextlib.suppress(SatelliteUnreachable):
                await self._send("DELETE", self._session, None, {"X-Auth-Token": self._token})
        self._token = self._session = None
        await self._http.aclose()
