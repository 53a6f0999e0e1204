"""The state one BMC's Redfish families share: the board and what the service observed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from racklet.bmc._http.idempotency import OnceByKey
from racklet.bmc._http.odata import ROOT
from racklet.bmc._state.asset_tag import AssetTag
from racklet.bmc._state.boot import BootStatus
from racklet.bmc._state.console import ConsoleLog
from racklet.bmc._state.events import EventBus
from racklet.bmc._state.network import NetworkConfig
from racklet.bmc._state.power import Meter, PowerControl
from racklet.hw import BmcBoard
from racklet.log import ContextLogger

if TYPE_CHECKING:
    from racklet.bmc._state.bmc_runtime import BmcFirmware
    from racklet.bmc._state.subscriptions import Subscriptions

MANAGER_ID = "bmc"


@dataclass
class BmcContext:
    unit: str
    board: BmcBoard
    firmware_version: str
    uuid: str
    boot: BootStatus
    power: PowerControl
    meter: Meter
    console: ConsoleLog
    log: ContextLogger
    events: EventBus
    firmware: BmcFirmware | None = None
    """The BMC's own firmware slots (A/B); None: a BMC that cannot update itself."""
    asset_tag: AssetTag = field(default_factory=lambda: AssetTag(None))
    """The tray's asset tag (in memory only unless the service gives it a file)."""
    network: NetworkConfig = field(default_factory=lambda: NetworkConfig(None))
    """The management port's configured network settings (in memory only unless given a file)."""
    resets: OnceByKey = field(default_factory=OnceByKey)
    """Resets done once by ``Idempotency-Key``, through the System or the Chassis alike."""
    subscriptions: Subscriptions | None = None
    """The EventService's push subscriptions; None: a BMC that only streams (SSE)."""
    power_limit_set_point: float | None = None
    """The last power cap asked for (``ControlMode: Automatic`` alone re-applies it)."""

    @property
    def system_path(self) -> str:
        return f"{ROOT}/Systems/{self.unit}"

    @property
    def chassis_path(self) -> str:
        return f"{ROOT}/Chassis/{self.unit}"

    @property
    def manager_path(self) -> str:
        return f"{ROOT}/Managers/{MANAGER_ID}"

    def present(self) -> bool:
        return self.board.presence.is_present()
