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

from racklet.audit import AuditLog
from racklet.bmc.certificates import CertificateStore, https_slot
from racklet.bmc.login import (
    ACCOUNTS,
    Accounts,
    BackoffPolicy,
    EventBus,
    LoginEvents,
    SessionStore,
    read_accounts,
)
from racklet.config import RackConfig
from racklet.hw import RackBoard
from racklet.log import get_logger
from racklet.net import ca_trust_domain, client_context, spiffe_id
from racklet.rmc._app import Aggregator, build_app
from racklet.rmc._events import EventFanIn
from racklet.rmc._manager import MANAGER, ManagerInfo, ManagerResources, mac_for
from racklet.rmc._pid import CoolingConfig
from racklet.rmc._rack import RackMonitor, UnitSummary
from racklet.rmc._rack_routes import RACK, RackResources
from racklet.rmc._satellite import AggregationSource, SatelliteClient
from racklet.rmc._services import MAX_PUSH, PUSH_TIMEOUT
from racklet.rmc._simple_update import SimpleUpdateFetcher
from racklet.rmc._subscriptions import Subscriptions
from racklet.rmc.errors import RmcConfigError, SatelliteUnreachable
from racklet.tasks import OwnedTask

ROOT_CHASSIS = "/redfish/v1/Chassis"
ROOT_SYSTEMS = "/redfish/v1/Systems"
UNIT_POLL_SECONDS = 2.0
"""How often the RMC asks each BMC for its system's power state and health (the display)."""


@dataclass
class RmcSettings:
    sources: list[AggregationSource]
    ca_bundle: Path
    """The rack CA: the only issuer the RMC trusts for a BMC's certificate."""
    accounts_file: Path
    """Who may use the RMC (``racklet.bmc.write_accounts`` format, mode 0600); changes made
    through its AccountService are saved there."""
    client_cert: tuple[Path, Path]
    """(certificate, key) the RMC logs in to every BMC with (:func:`bmc_credentials`)."""
    login_backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    """How a source that keeps failing to log in to the RMC is slowed."""
    session_timeout: int = 1800
    request_timeout: float = 5.0
    """Seconds a BMC has to answer one forwarded request."""
    name: str = "rack-1"
    service_uuid: str = field(default="")
    audit_file: Path | None = None
    """Where the RMC writes its audit log; None: ``audit.log`` beside ``accounts_file``."""
    board: RackBoard | None = None
    """The rack's shared hardware (fans, slot temperatures, busbar monitor); None: the RMC
    only aggregates (no ``Chassis/rack``, an empty ``/metrics``)."""
    cooling: CoolingConfig | None = None
    """The fan zones; None: one zone over every fan and slot sensor (``default_cooling``)."""
    cooling_refused: str | None = None
    """Why the declared fan zones were refused: the RMC then runs every rack fan flat out."""
    firmware_version: str = ""
    """What ``Managers/rmc`` reports as its ``FirmwareVersion`` (default: Racklet's)."""
    host: str = "127.0.0.1"
    https_port: int | None = None
    """Where its listener is (``Managers/rmc/NetworkProtocol``, ``EthernetInterfaces``)."""
    mac_address: str = ""
    """The management interface's MAC; empty: a stable one derived from the rack's name."""
    server_cert: Path | None = None
    """The certificate the RMC's listener serves (``<stem>.crt`` beside ``<stem>.key``, as
    ``racklet up`` writes them); with it the RMC serves a CertificateService that renews it
    (``.../HTTPS/Certificates/1``). None: no CertificateService."""
    cert_roles: dict[str, str] | None = None
    """Client-certificate role identities → roles (as a BMC's ``cert_roles``); None: the
    rack's controller is ``RackController``, so it may renew the RMC's certificate."""
    link_speed_mbps: int | None = 1000
    """The management port's speed (a Racklet RMC board has one gigabit port)."""
    update_origins: tuple[str, ...] = ()
    """The only origins (``https://host:port``: the rack's boot server) its
    ``UpdateService.SimpleUpdate`` fetches from; empty: no SimpleUpdate."""
    crl: Path | None = None
    """The rack CA's CRL, followed: a BMC or boot server whose certificate it revokes is
    refused at the handshake. None: no revocation check of the servers it reaches."""


def sources_from_config(config: RackConfig) -> list[AggregationSource]:
    """One aggregation source per unit of a ``racklet.yaml``: prefix = unit name."""
    return [AggregationSource(unit.name, unit.bmc.url) for unit in config.units]


class RmcService:
    """One Redfish endpoint for the rack, in front of every unit BMC."""

    def __init__(self, settings: RmcSettings) -> None:
        names = [s.name for s in settings.sources]
        if len(set(names)) != len(names):
            raise RmcConfigError(f"aggregation source names must be unique: {names}")
        try:
            cert, key = settings.client_cert
            domain = ca_trust_domain(settings.ca_bundle.read_bytes())
            # Each BMC must prove it is that unit's BMC, not any rack-CA server.
            contexts: dict[str, ssl.SSLContext] = {
                s.name: client_context(
                    settings.ca_bundle,
                    cert,
                    key,
                    expect=spiffe_id(domain, "bmc", s.name),
                    follow=settings.crl is not None,
                    crl=settings.crl,
                )
                for s in settings.sources
            }
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise RmcConfigError(
                f"cannot use the rack CA {settings.ca_bundle} or the RMC's client certificate "
                f"{settings.client_cert[0]}: {exc}"
            ) from exc
        self.settings = settings
        self._log = get_logger("rmc", unit=settings.name)
        cert_roles = settings.cert_roles
        if cert_roles is None:
            cert_roles = {spiffe_id(domain, "controller"): "RackController"}
        self.certificates: CertificateStore | None = None
        if settings.server_cert is not None:
            slot = https_slot(MANAGER, "rmc", "rmc", settings.server_cert.stem)
            self.certificates = CertificateStore(
                settings.server_cert.parent, slot, rack_ca=settings.ca_bundle
            )
        self._clients = {
            s.name: SatelliteClient(s, contexts[s.name], settings.request_timeout)
            for s in settings.sources
        }
        fetcher = None
        if settings.update_origins:
            # The boot server is the controller's machine listener: pinned to its identity.
            boot_tls = client_context(
                settings.ca_bundle,
                cert,
                key,
                expect=spiffe_id(domain, "controller"),
                follow=settings.crl is not None,
                crl=settings.crl,
            )
            fetcher = SimpleUpdateFetcher(settings.update_origins, boot_tls, MAX_PUSH, PUSH_TIMEOUT)
        self.events = EventBus()
        self.accounts = Accounts(
            path=settings.accounts_file,
            backoff=settings.login_backoff,
            report=LoginEvents(self.events, self._log.bind(request="login"), ACCOUNTS),
        )
        sessions = SessionStore(settings.session_timeout)
        service_uuid = settings.service_uuid or str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"urn:racklet:rmc:{settings.name}")
        )
        aggregator = Aggregator(self._clients, service_uuid, self._log)
        self.audit = AuditLog(settings.audit_file or settings.accounts_file.parent / "audit.log")
        self.monitor: RackMonitor | None = None
        if settings.board is not None:
            self.monitor = RackMonitor(
                settings.board,
                settings.accounts_file.parent,
                self.events,
                self._log.bind(request="cooling"),
                settings.cooling,
                refused=settings.cooling_refused,
                origin=f"{ROOT_CHASSIS}/rack/ThermalSubsystem",
            )
            self.monitor.units = {s.name: UnitSummary() for s in settings.sources}
        self._poller = OwnedTask("rmc:units")
        events_log = self._log.bind(request="events")
        self.fan_in = EventFanIn(
            self._clients, self.events, events_log, Subscriptions(settings.ca_bundle, events_log)
        )
        self.manager = ManagerResources(
            ManagerInfo(
                name=settings.name,
                uuid=service_uuid,
                firmware_version=settings.firmware_version or _racklet_version(),
                host=settings.host,
                https_port=settings.https_port,
                mac_address=settings.mac_address or mac_for(settings.name),
                rack_chassis=None if self.monitor is None else RACK,
                link_speed_mbps=settings.link_speed_mbps,
                certificates=self.certificates is not None,
            ),
            self.restart,
        )
        self.rack = (
            None
            if self.monitor is None
            else RackResources(self.monitor, settings.accounts_file.parent, MANAGER)
        )
        self.app: Starlette = build_app(
            aggregator,
            self.accounts,
            sessions,
            self.events,
            self.manager,
            self.fan_in,
            self.audit,
            rack=self.rack,
            certificates=self.certificates,
            cert_roles=cert_roles,
            fetcher=fetcher,
        )

    async def start(self) -> None:
        found = await asyncio.to_thread(read_accounts, self.settings.accounts_file)
        self.accounts.replace(found)
        if self.rack is not None:
            await asyncio.to_thread(self.rack.load)
        await self._start_loops()
        await self.fan_in.start()
        self._log.info(f"RMC aggregating {len(self._clients)} BMCs")

    async def _start_loops(self) -> None:
        if self.monitor is not None:
            await self.monitor.start()
            self._poller.start(self._poll_units)

    async def _stop_loops(self) -> None:
        await self._poller.stop()
        if self.monitor is not None:
            await self.monitor.stop()

    async def restart(self) -> None:
        """``Manager.Reset``: the RMC's loops start afresh (cooling, meter, units' poll)."""
        self._log.warning("RMC reset: restarting its cooling, metering and polling")
        await self._stop_loops()
        await self._start_loops()

    async def _poll_units(self) -> None:
        """Keep the display's view of every unit (power state, health) fresh."""
        while True:
            await asyncio.gather(*(self._poll(name) for name in self._clients))
            assert self.monitor is not None
            self.monitor.polled()
            await asyncio.sleep(UNIT_POLL_SECONDS)

    async def _poll(self, name: str) -> None:
        assert self.monitor is not None
        summary = self.monitor.units.setdefault(name, UnitSummary())
        try:
            answer = await self._clients[name].request("GET", f"{ROOT_SYSTEMS}/{name}")
            body = answer.json() if answer.status_code == 200 else {}
        except (SatelliteUnreachable, ValueError):
            body = {}
        body = body if isinstance(body, dict) else {}
        status = body.get("Status")
        summary.power_state = body.get("PowerState") if body else None
        summary.health = status.get("Health") if isinstance(status, dict) else None
        summary.power_watts = None
        try:
            answer = await self._clients[name].request(
                "GET", f"{ROOT_CHASSIS}/{name}/EnvironmentMetrics"
            )
            metrics = answer.json() if answer.status_code == 200 else {}
        except (SatelliteUnreachable, ValueError):
            return
        power = metrics.get("PowerWatts") if isinstance(metrics, dict) else None
        reading = power.get("Reading") if isinstance(power, dict) else None
        if isinstance(reading, int | float):
            summary.power_watts = float(reading)

    async def stop(self) -> None:
        await self.fan_in.stop()
        await self._stop_loops()
        for client in self._clients.values():
            await client.aclose()
        await self.audit.aclose()
        self._log.info("RMC stopped")


def _racklet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"racklet-rmc {version('racklet')}"
    except PackageNotFoundError:
        return "racklet-rmc"
