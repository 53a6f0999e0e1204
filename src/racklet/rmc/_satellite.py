"""The RMC's side of one unit BMC: where it is, and HTTPS to it with the RMC's certificate.

The client trusts only the rack CA and logs in with the RMC's own client certificate (see
:func:`racklet.rmc.bmc_credentials`): no BMC password, no session to lose when a BMC
restarts, nothing an attacker failing logins at the BMC can lock. It hands back raw
responses: the proxy passes a BMC's status, ETag and error body through, so it must not turn
them into exceptions. Transport failures become :class:`SatelliteUnreachable`.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from racklet.redfish import RedfishUnreachable, bounded_lines, sse_frames
from racklet.rmc.errors import RmcConfigError, SatelliteUnreachable

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


@dataclass(frozen=True)
class AggregationSource:
    """One unit BMC the RMC aggregates: its prefix name and Redfish URL."""

    name: str
    """The member-ID prefix (``unit-1`` → ``/redfish/v1/Systems/unit-1_unit-1``)."""
    url: str

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
        """``ssl_context`` carries the RMC's client certificate: it is the login."""
        self.source = source
        self._http = httpx.AsyncClient(
            base_url=source.url.rstrip("/"),
            verify=ssl_context,
            timeout=timeout,
            headers={"Accept": "application/json"},
        )

    async def request(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        files: dict[str, Any] | None = None,
        answer_within: float | None = None,
    ) -> httpx.Response:
        """Send one request; the BMC's answer comes back whatever its status. ``files`` sends
        a multipart body (an update push); ``answer_within`` (seconds) replaces the default
        timeout for slow ones."""
        extra: dict[str, Any] = {} if answer_within is None else {"timeout": answer_within}
        try:
            return await self._http.request(
                method, path, content=content, headers=headers, files=files, **extra
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    @contextlib.asynccontextmanager
    async def events(self, path: str) -> AsyncIterator[AsyncIterator[tuple[str, dict[str, Any]]]]:
        """The frames (``id:``, the event) of the BMC's SSE stream; no read timeout. Read
        bounded (:func:`racklet.redfish.sse_frames`): a line longer than any event drops the
        stream, so a compromised BMC cannot make the RMC buffer without bound."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        try:
            async with self._http.stream(
                "GET", path, headers={"Accept": "text/event-stream"}, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    raise SatelliteUnreachable(
                        f"BMC {self.source.name}: {path} answered HTTP {response.status_code}"
                    )
                where = f"BMC {self.source.name}: {path}"
                yield sse_frames(bounded_lines(response.aiter_bytes(), where))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        except RedfishUnreachable as exc:  # the stream broke the bounds
            raise SatelliteUnreachable(str(exc)) from exc

    def _unreachable(self, exc: Exception) -> SatelliteUnreachable:
        return SatelliteUnreachable(
            f"BMC {self.source.name} ({self.source.url}): {type(exc).__name__}: "
            f"{exc or 'no answer'}"
        )

    async def aclose(self) -> None:
        await self._http.aclose()
