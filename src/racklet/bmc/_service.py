"""The BMC service of one unit: the Redfish app plus the background work of a BMC.

Background tasks (console capture, power sampling, the backplane link, a power transition)
are owned here: started by :meth:`BmcService.start`, cancelled and awaited by
:meth:`BmcService.stop`. Serving :attr:`BmcService.app` over TLS is the caller's job
(``racklet.net.AppServer``), so one process can host many BMCs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette

from racklet.audit import AuditLog
from racklet.bmc._app import RequestLogger, build_app
from racklet.bmc._http.uris import ACCOUNTS
from racklet.bmc._link import LinkService
from racklet.bmc._resources.update import UpdateSetup
from racklet.bmc._state.accounts import Accounts, read_accounts
from racklet.bmc._state.asset_tag import AssetTag
from racklet.bmc._state.bmc_runtime import SELF_TEST_DEADLINE, BmcFirmware
from racklet.bmc._state.boot import BootStatus
from racklet.bmc._state.certificates import CertificateStore
from racklet.bmc._state.console import ConsoleLog, capture
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.energy import EnergyFile
from racklet.bmc._state.events import EventBus, LoginEvents
from racklet.bmc._state.fans import FanPolicy
from racklet.bmc._state.firmware import ImageVerifier, SlotProvider, StagedSlots, reject_all
from racklet.bmc._state.network import NetworkConfig
from racklet.bmc._state.power import Meter, PowerControl, PowerPolicy
from racklet.bmc._state.sessions import SessionStore
from racklet.bmc._state.subscriptions import Subscriptions
from racklet.bmc._state.tasks import TaskRegistry
from racklet.bmc._state.throttle import BackoffPolicy
from racklet.bmc._state.unit_slots import UnitSlots
from racklet.config import write_private
from racklet.hw import BmcBoard
from racklet.log import get_logger
from racklet.net import spiffe_id


@dataclass
class BmcSettings:
    unit: str
    """The Systems and Chassis id."""
    state_dir: Path
    """The BMC's own storage: server.*, identity.*, trust.json, accounts.json."""
    firmware_version: str
    sample_period: float = 0.5
    """Simulated seconds between power-monitor samples (on ``board.clock``)."""
    halted_watts: float = 1.0
    """During a GracefulShutdown, a draw below this means the unit has halted."""
    shutdown_timeout: float = 20.0
    """Simulated seconds a GracefulShutdown waits for the halt before cutting power."""
    session_timeout: int = 1800
    """Idle seconds after which a Redfish session expires (30 to 86400)."""
    session_clock: Callable[[], float] = time.monotonic
    """The host clock session expiry reads: real time guards real credentials."""
    console_lines: int = 2000
    fan_period: float = 1.0
    """Simulated seconds between fan-policy steps (on ``board.clock``)."""
    temperature_caution: float = 70.0
    """SoC temperature (Cel) above which the BMC raises a sensor-threshold event."""
    cert_roles: dict[str, str] = field(
        default_factory=lambda: {
            spiffe_id("rack-1", "controller"): "RackController",
            spiffe_id("rack-1", "rmc"): "Operator",
        }
    )
    """Client-certificate role identities (SPIFFE IDs from the rack CA) accepted as a login,
    and their Redfish roles (the host passes its own rack's: ``BmcHost`` in the twin): the
    controller and the RMC log in with their own certificates, never a password."""
    login_backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    """How a source that keeps failing to log in is slowed (:mod:`racklet.bmc._state.throttle`)."""
    image_verifier: ImageVerifier = reject_all
    """Vouches for a pushed firmware image (the trust chain's); the default accepts none."""
    slots: SlotProvider | None = None
    """The unit's A/B boot slots; None: :class:`UnitSlots` over ``unit_storage`` if given,
    else :class:`StagedSlots` (slots listed, none writable)."""
    unit_storage: Path | None = None
    """The unit's storage as this BMC reaches it (in the twin ``<state-dir>/units/<unit>``):
    where a pushed OS payload is written, into the slot its bootstrap boots."""
    restart: Callable[[], None] | None = None
    """Asks the host to restart this BMC (stop and start its listener and service, see
    :class:`BmcHost`); None: the service restarts itself in place."""
    self_test_deadline: float = SELF_TEST_DEADLINE
    """Host seconds new BMC firmware has to pass its self-test before the BMC falls back."""
    audit_file: Path | None = None
    """Where the BMC writes its audit log; None: ``state_dir/audit.log``."""
    ca_bundle: Path | None = None
    """The rack CA, which an event subscription's listener may chain to besides the host's
    trusted CAs; None: the host's trusted CAs only."""


def _service_uuid(state_dir: Path) -> str:
    """This BMC's UUID, kept in its storage so it is stable across restarts."""
    path = state_dir / "uuid"
    with contextlib.suppress(OSError, ValueError):
        return str(uuid.UUID(path.read_text().strip()))
    value = str(uuid.uuid4())
    write_private(path, value + "\n")
    return value


class BmcService:
    """Redfish and the backplane link for one unit, over one board's HAL."""

    def __init__(self, board: BmcBoard, settings: BmcSettings) -> None:
        self.settings = settings
        self._log = RequestLogger(
            get_logger("bmc").logger, {"component": "bmc", "unit": settings.unit}
        )
        events = EventBus()
        boot = BootStatus(settings.unit, events)
        power = PowerControl(
            board,
            boot,
            PowerPolicy(settings.halted_watts, settings.shutdown_timeout),
            self._log,
            events,
        )
        self.context = BmcContext(
            unit=settings.unit,
            board=board,
            firmware_version=settings.firmware_version,
            uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:racklet:bmc:{settings.unit}")),
            boot=boot,
            power=power,
            meter=Meter(
                board,
                power,
                self._log.bind(request="sampler"),
                events,
                settings.temperature_caution,
                EnergyFile(settings.state_dir / "energy.json", self._log.bind(request="sampler")),
            ),
            events=events,
            asset_tag=AssetTag(settings.state_dir / "asset-tag.txt"),
            network=NetworkConfig(settings.state_dir / "network.json"),
            console=ConsoleLog(settings.console_lines),
            log=self._log,
        )
        subscriptions = Subscriptions(settings.ca_bundle, self._log.bind(request="subscriptions"))
        events.add_sink(lambda event: subscriptions.deliver(event.payload()))
        self.context.subscriptions = subscriptions
        self.fans = FanPolicy(
            board,
            events,
            self._log.bind(request="fans"),
            f"{self.context.chassis_path}/ThermalSubsystem/Fans",
        )
        self._accounts = Accounts(
            path=settings.state_dir / "accounts.json",
            backoff=settings.login_backoff,
            report=LoginEvents(events, self._log.bind(request="login"), ACCOUNTS),
        )
        self.certificates = CertificateStore.for_bmc(
            settings.unit,
            settings.state_dir,
            system_path=self.context.system_path,
            manager_path=self.context.manager_path,
        )
        self._link = LinkService(
            settings.unit,
            settings.state_dir,
            boot,
            self._log,
            clock=board.clock,
            restart=lambda: power.reset("ForceRestart"),
            identity=self.certificates.unit_identity,
        )
        self.tasks = TaskRegistry(self._log)
        self._restarting: asyncio.Task[None] | None = None
        self._restart_again = False
        self.firmware = BmcFirmware(
            settings.state_dir,
            settings.firmware_version,
            self._log.bind(request="firmware"),
            restart=settings.restart or self._restart_in_place,
            deadline=settings.self_test_deadline,
        )
        self.context.firmware = self.firmware
        update = UpdateSetup(
            verifier=settings.image_verifier,
            slots=settings.slots or self._unit_slots(settings),
            uploads=settings.state_dir / "uploads",
            bmc=self.firmware,
            ab=self._link.ab,
        )
        self.audit = AuditLog(settings.audit_file or settings.state_dir / "audit.log")
        self.app: Starlette = build_app(
            self.context,
            self._accounts,
            SessionStore(settings.session_timeout, settings.session_clock),
            self.tasks,
            update,
            settings.cert_roles,
            self.certificates,
            self.audit,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def _unit_slots(self, settings: BmcSettings) -> SlotProvider:
        if settings.unit_storage is None or self._link.ab is None:
            return StagedSlots()
        return UnitSlots(settings.unit_storage, self._link.ab_record, self._link.tryboot)

    @property
    def energy_joules(self) -> float:
        return self.context.meter.energy_joules

    async def start(self) -> None:
        if self._tasks:
            return
        state_dir = self.settings.state_dir
        self._accounts.replace(await asyncio.to_thread(read_accounts, state_dir / "accounts.json"))
        self.context.uuid = await asyncio.to_thread(_service_uuid, state_dir)
        await self.firmware.boot()
        await self.context.meter.restore()
        self.context.firmware_version = self.firmware.slots.running_version
        board, ctx = self.context.board, self.context
        unit = self.settings.unit
        self._tasks = [
            asyncio.create_task(capture(board.uart, ctx.console), name=f"bmc:{unit}:console"),
            asyncio.create_task(
                ctx.meter.run(self.settings.sample_period), name=f"bmc:{unit}:meter"
            ),
            asyncio.create_task(board.link.serve(self._link.handle), name=f"bmc:{unit}:link"),
            asyncio.create_task(self.fans.run(self.settings.fan_period), name=f"bmc:{unit}:fans"),
        ]
        self.firmware.start_self_test(self.app, board)
        ctx.events.started(ctx.manager_path, unit, ctx.firmware_version)
        self._log.info(f"BMC started (firmware {ctx.firmware_version})")

    def close_streams(self) -> None:
        """End every open event stream, so the HTTP server can stop without waiting on them."""
        self.context.events.close()

    def _restart_in_place(self) -> None:
        """No host to restart us: stop and start this service (the listener stays up)."""

        async def restart() -> None:
            while self._restart_again:
                self._restart_again = False
                await self._stop()
                await self.start()

        self._restart_again = True
        if self._restarting is None or self._restarting.done():
            self._restarting = asyncio.create_task(restart(), name="bmc:restart")

    async def stop(self) -> None:
        restarting, self._restarting = self._restarting, None
        if restarting is not None and restarting is not asyncio.current_task():
            restarting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await restarting
        await self._stop()
        await self.audit.aclose()

    async def _stop(self) -> None:
        self.close_streams()
        await self.firmware.stop()
        tasks, self._tasks = self._tasks, []
        await self.context.power.cancel_transition()
        await self.tasks.stop()
        if self.context.subscriptions is not None:
            await self.context.subscriptions.stop()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if tasks:
            try:
                await self.context.meter.persist()
            except OSError as exc:
                self._log.warning(f"cannot persist the energy counter: {exc}")
            self._log.info("BMC stopped")
