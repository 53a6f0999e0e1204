"""The CLI's view of a running rack: the controller's HTTP API, found through racklet.yaml."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from json import loads as _loads
from typing import Any

import httpx

from racklet.api import HELD_OFF_ANNOTATION
from racklet.cli.errors import ApiRequestFailed, RackNotRunning
from racklet.config import RackConfig
from racklet.errors import ConfigError
from racklet.net import ca_trust_domain, client_context, spiffe_id


def rack_identity(config: RackConfig, role: str, name: str | None = None) -> str:
    """The SPIFFE ID a peer of this rack must prove (the trust domain is the rack CA's)."""
    try:
        with open(config.api.ca_bundle, "rb") as handle:
            domain = ca_trust_domain(handle.read())
        return spiffe_id(domain, role, name)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot use the CA bundle {config.api.ca_bundle}: {exc}") from None


def bmc_identity(config: RackConfig, unit: str) -> str:
    return rack_identity(config, "bmc", unit)


class HttpError(ApiRequestFailed):
    """The controller answered with an error status; ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


TOKEN_ENV = "RACKLET_TOKEN"


class ApiClient:
    """Synchronous: one CLI command makes a handful of calls and then exits.

    It sends ``$RACKLET_TOKEN`` if set (a token from ``racklet token create``), otherwise the
    rack's admin token from racklet.yaml.
    """

    def __init__(self, config: RackConfig, timeout: float = 10.0) -> None:
        self._base = config.api.url.rstrip("/")
        try:
            verify = client_context(
                config.api.ca_bundle, expect=rack_identity(config, "controller")
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use the CA bundle {config.api.ca_bundle}: {exc}") from None
        self._http = httpx.Client(
            base_url=self._base,
            verify=verify,
            headers={"Authorization": f"Bearer {os.environ.get(TOKEN_ENV) or config.api.token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise HttpError(_error_message(response), response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _unreachable(self, exc: Exception) -> ApiRequestFailed | RackNotRunning:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:  # something answers, but it is not this rack's controller
            return ApiRequestFailed(f"{self._base} is not this rack's controller: {cause}")
        return RackNotRunning(
            f"no rack answers at {self._base} ({type(exc).__name__}); is 'racklet up' running?"
        )

    # The generic resource API: /api/v1/<plural>[/<name>] (see docs/control-plane.md).

    def list_kind(self, plural: str, selector: str | None = None) -> dict[str, Any]:
        params = {"labelSelector": selector} if selector else None
        result: dict[str, Any] = self.request("GET", f"/api/v1/{plural}", params=params)
        return result

    def get(self, plural: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/{plural}/{name}")
        return result

    def find(self, plural: str, name: str) -> dict[str, Any] | None:
        """The object, or None when the server says 404."""
        try:
            return self.get(plural, name)
        except HttpError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/{plural}", json=body)
        return result

    def replace(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PUT", f"/api/v1/{plural}/{name}", json=body)
        return result

    def patch(self, plural: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PATCH", f"/api/v1/{plural}/{name}", json=patch)
        return result

    def delete(self, plural: str, name: str) -> None:
        self.request("DELETE", f"/api/v1/{plural}/{name}")

    def watch(
        self, plural: str, resource_version: str | None, selector: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type": ..., "object": ...}``) from a newline-delimited JSON stream."""
        params = {"watch": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if selector:
            params["labelSelector"] = selector
        try:
            with self._http.stream(
                "GET", f"/api/v1/{plural}", params=params, timeout=httpx.Timeout(10.0, read=None)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise HttpError(_error_message(response), response.status_code)
                for line in response.iter_lines():
                    if line.strip():
                        yield _loads(line)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def units(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.request("GET", "/api/v1/computeunits")["items"]
        return sorted(items, key=lambda u: (u["spec"].get("slot", 0), u["metadata"]["name"]))

    def unit(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/computeunits/{name}")
        return result

    def set_power(self, name: str, power: str) -> dict[str, Any]:
        patch: dict[str, Any] = {"spec": {"power": power}}
        if power == "On":  # also releases a board held off after its insertion
            patch["metadata"] = {"annotations": {HELD_OFF_ANNOTATION: None}}
        result: dict[str, Any] = self.request("PATCH", f"/api/v1/computeunits/{name}", json=patch)
        return result

    def power_cycle(self, name: str) -> str:
        """Ask for one power cycle of ``name``; the request's id (``status.lastPowerCycle``
        names it once the controller has handled it)."""
        answer = self.request("POST", f"/api/v1/computeunits/{name}/power-cycle")
        details = answer.get("details") if isinstance(answer, dict) else None
        return str((details or {}).get("requestId", ""))

    def events(self, name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params = {"limit": str(limit)}
        if name:
            params["name"] = name
        result = self.request("GET", "/api/v1/events", params=params)
        items: list[dict[str, Any]] = (
            result.get("items", []) if isinstance(result, dict) else result
        )
        return items


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return f"HTTP {response.status_code}: {str(body)[:200]}"
