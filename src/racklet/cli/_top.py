"""``racklet top [--interval S] [--once]``: a live terminal view of the running rack (rich).

Every ``--interval`` seconds it asks the controller for every unit (phase, power, load,
temperature, energy) and the rack (its PSU budget), and the RMC for the rack's own chassis
(busbar power, fans, zones, the front display, active alerts), then redraws: what ``htop``
is to a host, for a rack. It reads only; the controller's token and the RMC's account come
from ``racklet.yaml``. A part that does not answer is shown as unreachable rather than
ending the view, so ``top`` keeps running across a controller restart. ``--once`` prints one
frame and exits (for scripts; with no controller answering it is a one-line error, exit 1).
Ctrl-C ends it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from racklet import config as rack_config
from racklet.cli._client import ApiClient
from racklet.errors import RackletError
from racklet.net import client_context

RACK = "/redfish/v1/Chassis/rack"


def add_top_parser(commands: Any) -> None:
    top = commands.add_parser("top", help="a live view of the rack: units, busbar, fans, display")
    top.add_argument("--interval", type=_interval, default=2.0, help="seconds between redraws")
    top.add_argument("--once", action="store_true", help="print one frame and exit")


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--interval takes seconds, got {text!r}") from None
    if not 0.2 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"--interval must be within 0.2..3600, got {value:g}")
    return value


@dataclass
class Snapshot:
    units: list[dict[str, Any]] = field(default_factory=list)
    rack: dict[str, Any] | None = None
    chassis: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    fans: list[dict[str, Any]] = field(default_factory=list)
    zones: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Source:
    """Reads one snapshot from the controller and the RMC."""

    def __init__(self, config: rack_config.RackConfig) -> None:
        self.config = config
        self.api = ApiClient(config, timeout=5.0)
        self.rmc: httpx.Client | None = None
        if config.rmc is not None:
            self.rmc = httpx.Client(
                base_url=config.rmc.url,
                verify=client_context(config.layout.ca_cert),
                auth=(config.rmc.username, config.rmc.password),
                timeout=5.0,
            )

    def close(self) -> None:
        self.api.close()
        if self.rmc is not None:
            self.rmc.close()

    def read(self) -> Snapshot:
        shot = Snapshot()
        try:
            shot.units = sorted(
                self.api.list_kind("computeunits")["items"],
                key=lambda u: u.get("spec", {}).get("slot", 0),
            )
            shot.rack = self.api.find("racks", self.config.rack.name)
        except RackletError as exc:
            shot.problems.append(f"controller: {exc}")
        if self.rmc is not None:
            try:
                self._read_rmc(shot, self.rmc)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                shot.problems.append(f"RMC: {exc}")
        return shot

    def _read_rmc(self, shot: Snapshot, rmc: httpx.Client) -> None:
        def get(path: str) -> dict[str, Any]:
            answer = rmc.get(path)
            answer.raise_for_status()
            body: dict[str, Any] = answer.json()
            return body

        shot.chassis = get(RACK)
        shot.environment = get(f"{RACK}/EnvironmentMetrics")
        fans = get(f"{RACK}/ThermalSubsystem/Fans")["Members"]
        shot.fans = [get(m["@odata.id"]) for m in fans]
        controls = [get(m["@odata.id"]) for m in get(f"{RACK}/Controls")["Members"]]
        shot.zones = [c for c in controls if c.get("ControlType") == "Percent"]
        pwm = {c["Id"].removesuffix("-pwm"): c.get("SetPoint") for c in controls}
        for fan in shot.fans:
            fan["PWM"] = pwm.get(fan["Id"])


def _number(value: Any, unit: str, digits: int = 1) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.{digits}f}{unit}"


_PHASE_STYLE = {"Running": "green", "Off": "dim", "BootFailed": "red", "Unreachable": "red"}


def render(shot: Snapshot) -> RenderableType:
    units = Table(title="Units", expand=True)
    for column in ("UNIT", "SLOT", "PHASE", "POWER", "LOAD", "TEMP", "ENERGY"):
        units.add_column(column, justify="left" if column in ("UNIT", "PHASE") else "right")
    for unit in shot.units:
        status = unit.get("status") or {}
        phase = str(status.get("phase", "Unknown"))
        load = status.get("cpuLoad")
        units.add_row(
            unit["metadata"]["name"],
            str(unit.get("spec", {}).get("slot", "")),
            Text(phase, style=_PHASE_STYLE.get(phase, "yellow")),
            _number(status.get("powerWatts"), " W", 2),
            "-" if not isinstance(load, int | float) else f"{100 * load:.0f} %",
            _number(status.get("temperatureCelsius"), " °C"),
            _number(status.get("energyJoules"), " J", 0),
        )
    budget = (shot.rack or {}).get("spec", {}).get("psuRatedWatts")
    watts = ((shot.environment or {}).get("PowerWatts") or {}).get("Reading")
    if watts is None:
        watts = (shot.rack or {}).get("status", {}).get("powerWatts")
    busbar = Text(f"Busbar {_number(watts, ' W')} of {_number(budget, ' W', 0)}")
    if isinstance(watts, int | float) and isinstance(budget, int | float) and budget > 0:
        share = watts / budget
        filled = min(40, round(40 * share))
        style = "red" if share >= 1 else "yellow" if share >= 0.9 else "green"
        busbar.append(f"  [{'#' * filled}{'.' * (40 - filled)}] {share:.0%}", style=style)
    fans = Table(title="Rack fans", expand=True)
    for column in ("FAN", "RPM", "SPEED", "PWM"):
        fans.add_column(column, justify="left" if column == "FAN" else "right")
    for fan in shot.fans:
        speed = fan.get("SpeedPercent") or {}
        fans.add_row(
            fan["Id"],
            _number(speed.get("SpeedRPM"), "", 0),
            _number(speed.get("Reading"), " %", 0),
            _number(fan.get("PWM"), " %", 0),
        )
    for zone in shot.zones:
        mode = (zone.get("Oem") or {}).get("Racklet", {}).get("Mode", zone.get("ControlMode"))
        fans.add_row(
            Text(f"zone {zone['Id']}", style="red" if mode == "Failsafe" else "cyan"),
            "",
            _number(zone.get("SetPoint"), " %", 0),
            str(mode),
        )
    display_rows = ((shot.chassis or {}).get("Oem") or {}).get("Racklet", {}).get("Display", [])
    display = Panel(
        "\n".join(display_rows) or "(no display)",
        title="Front display",
        width=25,
        style="bold white on black",
    )
    health = ((shot.chassis or {}).get("Status") or {}).get("Health", "-")
    led = (shot.chassis or {}).get("IndicatorLED", "-")
    alerts = Text(f"Rack health {health}, status LED {led}")
    for problem in shot.problems:
        alerts.append(f"\n{problem}", style="red")
    return Group(busbar, units, fans, display, alerts)


def cmd_top(args: argparse.Namespace) -> int:
    config = rack_config.load(args.config)
    source = Source(config)
    console = Console()
    try:
        if args.once:
            shot = source.read()
            if not shot.units and shot.problems:
                raise RackletError(shot.problems[0])  # nothing to show: say why, exit 1
            console.print(render(shot))
            return 0
        with Live(render(source.read()), console=console, screen=False, auto_refresh=False) as live:
            while True:
                time.sleep(args.interval)
                live.update(render(source.read()), refresh=True)
    except KeyboardInterrupt:
        return 0
    finally:
        source.close()
