"""The management side's client of the hardware side's control endpoint (faults, hot-swap).

The only way the controller and the CLI break the rack on purpose: HTTPS with the
controller's rack-CA client identity (the endpoint serves no one else). Refusals come back
as :class:`HardwareRefused` carrying the endpoint's ``Status`` message and code; a transport
failure is :class:`HardwareUnreachable`. This module knows nothing of the twin's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from racklet.controller.errors import ControllerError
from racklet.net import ca_trust_domain, client_context, spiffe_id
from racklet.pki import CRL_NAME

PREFIX = "/control/v1"
TIMEOUT_SECONDS = 10.0


class HardwareRefused(ControllerError):
    """The hardware side refused (bad parameters, missing target, a conflict)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class HardwareUnreachable(ControllerError):
    """The control endpoint did not answer (the hardware side is down or not configured)."""


class HardwareControl:
    """Faults and slots on the hardware side at ``url``, as the controller identity."""

    def __init__(
        self, url: str, ca: Path, cert: Path, key: Path, *, crl: Path | None = None
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/") + PREFIX,
            # Pinned to the hardware side's role identity, following the renewed client identity.
            verify=client_context(
                ca,
                cert,
                key,
                expect=spiffe_id(ca_trust_domain(ca.read_bytes()), "twin"),
                follow=True,
                crl=crl,
            ),
            timeout=TIMEOUT_SECONDS,
            # No idle pooled connection: the hardware side's listener would wait for its TLS
            # shutdown (asyncio's 30 s) when it stops. Faults are rare; a handshake is cheap.
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    @classmethod
    def for_state_dir(cls, url: str, state_dir: Path) -> HardwareControl:
        controller, pki = state_dir / "controller", state_dir / "pki"
        crl = pki / CRL_NAME
        return cls(
            url,
            pki / "ca.crt",
            controller / "client.crt",
            controller / "client.key",
            crl=crl if crl.exists() else None,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise HardwareUnreachable(
                f"the hardware side's control endpoint does not answer: {exc!r}"
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            raise HardwareRefused(message or f"HTTP {response.status_code}", response.status_code)
        return data

    async def capabilities(self) -> dict[str, str]:
        data = await self._call("GET", "/capabilities")
        return {str(k): str(v) for k, v in data["kinds"].items()}

    async def faults(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/faults"))["items"])

    async def inject(
        self, fault_id: str, kind: str, params: dict[str, Any], targets: list[str]
    ) -> dict[str, Any]:
        body = {"kind": kind, "params": params, "targets": targets}
        return dict(await self._call("PUT", f"/faults/{fault_id}", body))

    async def clear(self, fault_id: str) -> bool:
        return bool((await self._call("DELETE", f"/faults/{fault_id}"))["cleared"])

    async def slots(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/slots"))["items"])

    async def pull(self, slot: int) -> dict[str, Any]:
        return dict(await self._call("POST", f"/slots/{slot}/pull"))

    async def insert(
        self, slot: int, *, profile: str | None = None, new_board: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"newBoard": new_board}
        if profile is not None:
            body["profile"] = profile
        return dict(await self._call("POST", f"/slots/{slot}/insert", body))
