"""An async Redfish client over HTTPS, with session login, for the few calls Racklet makes.

It logs in lazily with a Redfish session (``X-Auth-Token``), logs in again once when a token
expires (401), and translates transport failures and error bodies into
:mod:`racklet.redfish.errors`. It trusts only the rack CA. Not here: discovery by walking
links, push event subscriptions (the event stream, :meth:`RedfishClient.events`, is here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json as _json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from racklet.net import client_context
from racklet.redfish._resources import (
    ChassisView,
    EnvironmentView,
    OsSlotView,
    ResetRequest,
    SystemView,
)
from racklet.redfish._sse import bounded_lines, sse_frames
from racklet.redfish.errors import (
    RedfishClientError,
    RedfishError,
    RedfishUnreachable,
    RedfishUntrusted,
)

SESSIONS = "/redfish/v1/SessionService/Sessions"
UPDATE_SERVICE = "/redfish/v1/UpdateService"
FIRMWARE_INVENTORY = f"{UPDATE_SERVICE}/FirmwareInventory"
EVENT_STREAM = "/redfish/v1/EventService/SSE"
RESET_TYPES = ("On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle")
_MAX_PAGES = 1000
_MAX_URLS = 32


@dataclass(frozen=True)
class BmcFirmwareView:
    """What a BMC says of its own firmware slots."""

    version: str
    committed: bool
    """False while the running firmware is on trial (not committed yet)."""
    standby_version: str | None
    standby_failure: str | None
    """Why the standby slot's image was given up (a failed self-test), if it was."""

    @classmethod
    def from_json(cls, running: dict[str, Any], standby: dict[str, Any]) -> BmcFirmwareView:
        """The BMC shows its committed version as ``LowestSupportedVersion`` (the floor), and
        an image it gave up as a Critical standby slot whose description says why."""
        version = str(running.get("Version") or "")
        floor = running.get("LowestSupportedVersion")
        health = (standby.get("Status") or {}).get("Health")
        _, _, why = str(standby.get("Description") or "").partition("given up: ")
        return cls(
            version=version,
            committed=floor is None or floor == version,
            standby_version=str(standby["Version"]) if standby.get("Version") else None,
            standby_failure=(why or "given up") if health == "Critical" else None,
        )


class RedfishClient:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str | None,
        *,
        ca_bundle: Path,
        client_cert: tuple[Path, Path] | None = None,
        timeout: float = 5.0,
        expect: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pinned_key: bytes | None = None,
        crl: Path | None = None,
    ) -> None:
        """``client_cert`` is (certificate, key), followed as it is renewed; ``expect`` the
        SPIFFE ID the BMC must prove (``spiffe://<rack>/bmc/<unit>``: any other rack-CA
        server is refused at the handshake); ``transport`` is for tests only;
        ``pinned_key``: see :meth:`past_expiry`. ``crl``: the rack CA's CRL, followed: a BMC
        whose certificate is revoked is refused at the handshake (a stolen key is no BMC).

        ``password`` None: the certificate is the only login (the controller's: it never
        holds a BMC password), so a BMC that refuses it answers a :class:`RedfishError` 401.
        """
        cert, key = client_cert if client_cert else (None, None)
        self._settings = (username, password, ca_bundle, client_cert, timeout, expect, transport)
        self._crl = crl
        self.base_url = base_url.rstrip("/")
        self._credentials = (
            None if password is None else {"UserName": username, "Password": password}
        )
        verify: ssl.SSLContext | bool = True
        if transport is None:
            try:
                verify = client_context(
                    ca_bundle, cert, key, expect=expect, follow=True, pinned_key=pinned_key, crl=crl
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise RedfishClientError(
                    f"cannot use the CA bundle or client certificate for {base_url}: {exc}"
                ) from None
        self._transport = transport or httpx.AsyncHTTPTransport(verify=verify)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=self._transport,
            headers={"Accept": "application/json"},
            trust_env=False,  # a BMC is reached directly, never through an environment proxy
        )
        self._headers = list(self._http.headers.multi_items())
        self._timeout = self._http.timeout.as_dict()
        self._urls: dict[str, httpx.URL] = {}
        self._token: str | None = None
        self._session_url: str | None = None
        self._login_lock = asyncio.Lock()
        self._certificate_login = client_cert is not None and transport is None

    def _url(self, path: str) -> httpx.URL:
        """The parsed absolute URL of ``path`` (a path on this BMC, or an absolute URL it
        named); a fixed resource path's is parsed once per client.

        Parsing and joining a URL was a third of a GET's own cost; the controller asks each
        BMC for the same few paths over and over. Paths with a query (paged reads) are not
        kept, so the memo stays a handful of entries.
        """
        url = self._urls.get(path)
        if url is None:
            if not path.startswith("/"):
                url = httpx.URL(path)
                return url if url.is_absolute_url else httpx.URL(f"{self.base_url}/{path}")
            url = httpx.URL(self.base_url + path)
            if "?" not in path and len(self._urls) < _MAX_URLS:
                self._urls[path] = url
        return url

    # -- session ----------------------------------------------------------------------------

    async def _login(self, stale: str | None) -> str:
        async with self._login_lock:
            if self._token is not None and self._token != stale:
                return self._token  # another caller already logged in again
            if self._credentials is None:
                raise RedfishError(401, f"{self.base_url} refused this client's certificate")
            response = await self._send("POST", SESSIONS, json=self._credentials, token=None)
            _raise_for_status(response)
            token = str(response.headers.get("X-Auth-Token") or "")
            if not token:
                raise RedfishError(response.status_code, "session created without X-Auth-Token")
            self._token = token
            self._session_url = response.headers.get("Location")
            return token

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        token: str | None,
        files: Any = None,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request straight through the transport (its connection pool), read whole.

        Not through the ``httpx.AsyncClient``: its per-request layers (cookie jar, auth and
        redirect flows, default-header merging) were a quarter of a look's CPU and do nothing
        here — a BMC's login is a certificate or a token header, and it never redirects."""
        headers = self._headers.copy()
        if token:
            headers.append(("X-Auth-Token", token))
        if extra:
            headers.extend(extra.items())
        request = httpx.Request(
            method,
            self._url(path),
            headers=headers,
            json=json,
            files=files,
            extensions={"timeout": self._timeout},
        )
        try:
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        return response

    async def _request(
        self,
        method: str,
        path: str,
        json: Any = None,
        files: Any = None,
        extra: dict[str, str] | None = None,
        check: Callable[[httpx.Response], None] | None = None,
    ) -> httpx.Response:
        check = check or _raise_for_status
        if self._certificate_login:
            # Mutual TLS is the login: no password crosses the wire while the BMC accepts it.
            response = await self._send(
                method, path, json=json, token=None, files=files, extra=extra
            )
            if response.status_code != 401 or self._credentials is None:
                check(response)
                return response
            self._certificate_login = False  # this BMC does not map our certificate: sessions
        token = self._token or await self._login(None)
        response = await self._send(method, path, json=json, token=token, files=files, extra=extra)
        if response.status_code == 401:
            token = await self._login(token)
            response = await self._send(
                method, path, json=json, token=token, files=files, extra=extra
            )
        check(response)
        return response

    # -- resources --------------------------------------------------------------------------

    async def get(self, path: str) -> dict[str, Any]:
        response = await self._request("GET", path)
        try:
            body = response.json()
        except ValueError as exc:
            raise RedfishError(response.status_code, f"{path} did not return JSON") from exc
        if not isinstance(body, dict):
            raise RedfishError(response.status_code, f"{path} did not return a JSON object")
        return body

    async def patch(self, path: str, body: dict[str, Any]) -> None:
        """PATCH a resource (a refusal is :class:`RedfishError` with the BMC's message)."""
        await self._request("PATCH", path, json=body, check=_raise_with_resolution)

    async def system(self, system_id: str) -> SystemView:
        return SystemView.from_json(await self.get(f"/redfish/v1/Systems/{system_id}"))

    async def chassis(self, chassis_id: str) -> ChassisView:
        return ChassisView.from_json(await self.get(f"/redfish/v1/Chassis/{chassis_id}"))

    async def environment_metrics(self, chassis_id: str) -> EnvironmentView:
        data = await self.get(f"/redfish/v1/Chassis/{chassis_id}/EnvironmentMetrics")
        return EnvironmentView.from_json(data)

    async def reset(
        self, system_id: str, reset_type: str, *, idempotency_key: str | None = None
    ) -> None:
        """``idempotency_key`` makes a repeat of this reset (the same key) a no-op at a BMC
        that honours the ``Idempotency-Key`` header, as Racklet's does."""
        if reset_type not in RESET_TYPES:
            raise ValueError(f"unknown ResetType {reset_type!r}; one of {', '.join(RESET_TYPES)}")
        await self._request(
            "POST",
            f"/redfish/v1/Systems/{system_id}/Actions/ComputerSystem.Reset",
            json={"ResetType": reset_type},
            extra={"Idempotency-Key": idempotency_key} if idempotency_key else None,
        )

    async def set_power_limit(self, chassis_id: str, watts: float | None) -> None:
        """Cap the unit at ``watts`` (``Controls/PowerLimit``), or lift its cap with None."""
        body: dict[str, Any] = (
            {"ControlMode": "Disabled"}
            if watts is None
            else {"SetPoint": round(watts, 3), "ControlMode": "Automatic"}
        )
        await self._request(
            "PATCH", f"/redfish/v1/Chassis/{chassis_id}/Controls/PowerLimit", json=body
        )

    # -- BMC firmware (UpdateService, the A/B slots of the BMC itself) -------------------------

    async def bmc_firmware(self) -> BmcFirmwareView:
        """The BMC's running firmware and its standby slot."""
        running = await self.get(f"{FIRMWARE_INVENTORY}/bmc")
        try:
            standby = await self.get(f"{FIRMWARE_INVENTORY}/bmc-standby")
        except RedfishError as exc:
            if exc.status != 404:
                raise
            standby = {}
        return BmcFirmwareView.from_json(running, standby)

    async def push_bmc_firmware(
        self, image: bytes, oem_parameters: dict[str, Any], *, apply_time: str = "Immediate"
    ) -> str:
        """Multipart push of a signed image to the BMC's standby slot; the task monitor URI.

        With ``Immediate`` the BMC try-boots it as soon as it is written (it restarts); this
        needs only ``ConfigureComponents``, which the controller's certificate login has."""
        parameters = {
            "Targets": [f"{FIRMWARE_INVENTORY}/bmc-standby"],
            "@Redfish.OperationApplyTime": apply_time,
        }
        files = {
            "UpdateParameters": (None, _json.dumps(parameters), "application/json"),
            "UpdateFile": ("bmc-firmware.img", image, "application/octet-stream"),
            "OemParameters": (None, _json.dumps(oem_parameters), "application/json"),
        }
        push_uri = (await self.get(UPDATE_SERVICE)).get("MultipartHttpPushUri")
        if not isinstance(push_uri, str) or not push_uri:
            raise RedfishError(200, "the BMC's UpdateService offers no MultipartHttpPushUri")
        response = await self._request("POST", push_uri, files=files)
        monitor = response.headers.get("Location")
        if not monitor:
            raise RedfishError(response.status_code, "the firmware push returned no task monitor")
        return str(monitor)

    async def task_outcome(self, monitor: str) -> str | None:
        """None while the task runs (or is gone with a restarted BMC), else ``"OK"`` or the
        message of the error that ended it."""
        try:
            response = await self._request("GET", monitor)
        except RedfishError as exc:
            return None if exc.status == 404 else exc.message
        return None if response.status_code == 202 else "OK"

    async def os_slots(self) -> list[OsSlotView]:
        """The unit's A/B OS slots (``slot-a``, ``slot-b``); none from a BMC without them."""
        found = []
        for ident in ("slot-a", "slot-b"):
            try:
                found.append(OsSlotView.from_json(await self.get(f"{FIRMWARE_INVENTORY}/{ident}")))
            except RedfishError as exc:
                if exc.status != 404:
                    raise
        return found

    async def console_entries(self, system_id: str, skip: int = 0) -> list[str]:
        """The unit's captured UART lines from ``skip`` on, following ``nextLink`` pages."""
        path = f"/redfish/v1/Systems/{system_id}/LogServices/Console/Entries"
        entries = await self._entries(f"{path}?$skip={skip}" if skip else path)
        return [str(m.get("Message", "")) for m in entries]

    async def reset_requests(self, manager_id: str = "bmc") -> list[ResetRequest]:
        """The Resets the BMC's EventLog records, oldest first, with who asked for each."""
        path = f"/redfish/v1/Managers/{manager_id}/LogServices/EventLog/Entries"
        found = (ResetRequest.from_entry(entry) for entry in await self._entries(path))
        return [request for request in found if request is not None]

    async def _entries(self, path: str) -> list[dict[str, Any]]:
        """Every member of a log's entries from ``path`` on, following ``nextLink`` pages."""
        members: list[dict[str, Any]] = []
        next_path: str | None = path
        for _ in range(_MAX_PAGES):
            if next_path is None:
                return members
            page = await self.get(next_path)
            members.extend(m for m in page.get("Members") or [] if isinstance(m, dict))
            link = page.get("Members@odata.nextLink")
            next_path = link if isinstance(link, str) and link else None
        raise RedfishError(200, f"{path}: more than {_MAX_PAGES} pages")

    def past_expiry(self, pinned_key: bytes) -> RedfishClient:
        """A client to the same BMC that accepts its certificate past its validity dates, as
        long as it still chains to the rack CA, names the expected role and carries exactly
        ``pinned_key`` (its SubjectPublicKeyInfo, DER): for renewing a certificate that
        expired while the rack was stopped. The caller closes it."""
        username, password, ca, cert, timeout, expect, transport = self._settings
        if expect is None:
            raise RedfishClientError(f"{self.base_url}: no role to expect of its certificate")
        return RedfishClient(
            self.base_url,
            username,
            password,
            ca_bundle=ca,
            client_cert=cert,
            timeout=timeout,
            expect=expect,
            transport=transport,
            pinned_key=pinned_key,
            crl=self._crl,
        )

    # -- events (EventService SSE) -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def events(
        self, path: str = EVENT_STREAM
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """The BMC's event stream: each ``Event`` payload as the BMC publishes it, for as
        long as the stream stays open (no read timeout: events are rare). A refusal is
        :class:`RedfishError`, a lost connection :class:`RedfishUnreachable`; the caller
        opens it again (a 401 first drops the session or the certificate login, so the next
        open logs in again)."""
        headers = {"Accept": "text/event-stream"}
        if not self._certificate_login:
            headers["X-Auth-Token"] = self._token or await self._login(None)
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        try:
            async with self._http.stream(
                "GET", self._url(path), headers=headers, timeout=timeout
            ) as response:
                if response.status_code == 401:
                    if self._certificate_login and self._credentials is not None:
                        self._certificate_login = False
                    self._token = None
                if response.status_code != 200:
                    await response.aread()
                    _raise_for_status(response)
                    raise RedfishError(response.status_code, f"{path} is no event stream")
                frames = sse_frames(bounded_lines(response.aiter_bytes(), path))
                yield (payload async for _, payload in frames)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    async def aclose(self) -> None:
        """End the session (best effort) and close the connection pool."""
        if self._token and self._session_url:
            with contextlib.suppress(RedfishUnreachable):
                await self._send("DELETE", self._session_url, token=self._token)
        self._token = None
        await self._http.aclose()

    async def __aenter__(self) -> RedfishClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- certificates (CertificateService) --------------------------------------------------
    # Making keys and installing certificates needs the OEM privilege the controller's
    # certificate login (role RackController) holds; an account session works too.

    async def _as_manager(self, method: str, path: str, json: Any = None) -> httpx.Response:
        return await self._request(method, path, json=json, check=_raise_with_resolution)

    async def certificate(self, uri: str) -> dict[str, Any] | None:
        """The Certificate resource at ``uri``; None when the BMC holds none there (404)."""
        try:
            return await self.get(uri)
        except RedfishError as exc:
            if exc.status == 404:
                return None
            raise

    async def generate_csr(
        self, collection: str, common_name: str, alternative_names: tuple[str, ...] = ()
    ) -> str:
        """Ask the BMC for a new key in ``collection``; return its CSR (PEM)."""
        body: dict[str, Any] = {
            "CertificateCollection": {"@odata.id": collection},
            "CommonName": common_name,
            "KeyPairAlgorithm": "TPM_ALG_ECDSA",
            "KeyCurveId": "TPM_ECC_NIST_P256",
        }
        if alternative_names:
            body["AlternativeNames"] = list(alternative_names)
        response = await self._as_manager(
            "POST", "/redfish/v1/CertificateService/Actions/CertificateService.GenerateCSR", body
        )
        try:
            csr = response.json().get("CSRString")
        except (ValueError, AttributeError) as exc:
            raise RedfishError(response.status_code, "GenerateCSR did not return JSON") from exc
        if not isinstance(csr, str) or not csr:
            raise RedfishError(response.status_code, "GenerateCSR returned no CSRString")
        return csr

    async def replace_certificate(self, uri: str, certificate_pem: str) -> None:
        """Install ``certificate_pem`` (for the key the last GenerateCSR made) at ``uri``."""
        await self._as_manager(
            "POST",
            "/redfish/v1/CertificateService/Actions/CertificateService.ReplaceCertificate",
            {
                "CertificateString": certificate_pem,
                "CertificateType": "PEM",
                "CertificateUri": {"@odata.id": uri},
            },
        )


def _unreachable(base_url: str, exc: httpx.TransportError) -> RedfishUnreachable:
    """The transport failure as the client's error: :class:`RedfishUntrusted` when the TLS
    handshake refused the server's certificate (the cause httpx wraps), else unreachable."""
    message = f"{base_url}: {type(exc).__name__}: {exc or 'no answer'}"
    cause: BaseException | None = exc
    for _ in range(8):  # httpx → httpcore → ssl; bounded, in case of a cycle
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return RedfishUntrusted(message)
        cause = cause.__cause__ or cause.__context__
    return RedfishUnreachable(message)


def _raise_with_resolution(response: httpx.Response) -> None:
    """Like :func:`_raise_for_status`; a refused certificate says why in its Resolution."""
    if 400 <= response.status_code < 500:
        message = _error_message(response)
        with contextlib.suppress(ValueError, AttributeError, IndexError, KeyError, TypeError):
            resolution = response.json()["error"]["@Message.ExtendedInfo"][0]["Resolution"]
            message = f"{message} {resolution}" if resolution != "None." else message
        raise RedfishError(response.status_code, message)
    _raise_for_status(response)


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    raise RedfishError(response.status_code, _error_message(response))


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        extended = error.get("@Message.ExtendedInfo")
        first = extended[0] if isinstance(extended, list) and extended else None
        if isinstance(first, dict) and first.get("Message"):
            return str(first["Message"])
        if error.get("message"):
            return str(error["message"])
    return response.reason_phrase or "error"
