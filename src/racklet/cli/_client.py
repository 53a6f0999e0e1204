"""The CLI's view of a running rack: the controller's HTTP API, found through racklet.yaml."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from racklet.cli.errors import ApiError, RackNotRunning
from racklet.config import RackConfig
from racklet.errors import ConfigError
from racklet.net import client_context


class ApiClient:
    """Synchronous: one CLI command makes a handful of calls and then exits."""

    def __init__(self, config: RackConfig, timeout: float = 10.0) -> None:
        self._base = config.api.url.rstrip("/")
        try:
            verify = client_context(config.api.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use the CA bundle {config.api.ca_bundle}: {exc}") from None
        self._http = httpx.Client(
            base_url=self._base,
            verify=verify,
            headers={"Authorization": f"Bearer {config.api.token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, json: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.TransportError as exc:
            raise RackNotRunning(
                f"no rack answers at {self._base} ({type(exc).__name__}); is 'racklet up' running?"
            ) from None
        if response.status_code >= 400:
            raise ApiError(_error_message(response))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def units(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.request("GET", "/api/v1/computeunits")["items"]
        return sorted(items, key=lambda u: (u["spec"].get("slot", 0), u["metadata"]["name"]))

    def unit(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/computeunits/{name}")
        return result

    def set_power(self, name: str, power: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PATCH", f"/api/v1/computeunits/{name}", json={"spec": {"power": power}}
        )
        return result

    def power_cycle(self, name: str) -> None:
        self.request("POST", f"/api/v1/computeunits/{name}/power-cycle")

    def events(self, name: str) -> list[dict[str, Any]]:
        result = self.request("GET", f"/api/v1/events?name={name}")
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
