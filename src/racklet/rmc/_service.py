"""The RMC service: its satellite clients, accounts and sessions, and the Redfish app.

Serving :attr:`RmcService.app` over TLS is the caller's job (``racklet.net.AppServer``), as
for the BMC, so the RMC can share a process and a loop with other services.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette

from racklet.config import RackConfig
from racklet.log import get_logger
from racklet.net import ca_trust_domain, client_context, spiffe_id
from racklet.rmc._app import Aggregator, build_app
from racklet.rmc._auth import Accounts, Sessions
from racklet.rmc._satellite import AggregationSource, SatelliteClient
from racklet.rmc.errors import RmcConfigError


@dataclass
class RmcSettings:
    sources: list[AggregationSource]
    ca_bundle: Path
    """The rack CA: the only issuer the RMC trusts for a BMC's certificate."""
    accounts_file: Path
    """Who may use the RMC (``racklet.bmc.write_accounts`` format, mode 0600)."""
    client_cert: tuple[Path, Path] | None = None
    """(certificate, key) the RMC presents to BMCs that ask for a client certificate."""
    session_timeout: int = 1800
    request_timeout: float = 5.0
    """Seconds a BMC has to answer one forwarded request."""
    name: str = "rack-1"
    service_uuid: str = field(default="")


def sources_from_config(config: RackConfig) -> list[AggregationSource]:
    """One aggregation source per unit of a ``racklet.yaml``: prefix = unit name."""
    return [
        AggregationSource(unit.name, unit.bmc.url, unit.bmc.username, unit.bmc.password)
        for unit in config.units
    ]


class RmcService:
    """One Redfish endpoint for the rack, in front of every unit BMC."""

    def __init__(self, settings: RmcSettings) -> None:
        names = [s.name for s in settings.sources]
        if len(set(names)) != len(names):
            raise RmcConfigError(f"aggregation source names must be unique: {names}")
        try:
            cert, key = settings.client_cert or (None, None)
            domain = ca_trust_domain(settings.ca_bundle.read_bytes())
            # Each BMC must prove it is that unit's BMC, not any rack-CA server.
            contexts: dict[str, ssl.SSLContext] = {
                s.name: client_context(
                    settings.ca_bundle, cert, key, expect=spiffe_id(domain, "bmc", s.name)
                )
                for s in settings.sources
            }
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise RmcConfigError(f"cannot use the rack CA {settings.ca_bundle}: {exc}") from exc
        self.settings = settings
        self._log = get_logger("rmc", unit=settings.name)
        self._clients = {
            s.name: SatelliteClient(s, contexts[s.name], settings.request_timeout)
            for s in settings.sources
        }
        self._accounts = Accounts()
        sessions = Sessions(settings.session_timeout)
        service_uuid = settings.service_uuid or str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"urn:racklet:rmc:{settings.name}")
        )
        aggregator = Aggregator(self._clients, self._accounts, sessions, service_uuid, self._log)
        self.app: Starlette = build_app(aggregator, self._accounts, sessions)

    async def start(self) -> None:
        await asyncio.to_thread(self._accounts.load, self.settings.accounts_file)
        self._log.info(f"RMC aggregating {len(self._clients)} BMCs")

    async def stop(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._log.info("RMC stopped")
