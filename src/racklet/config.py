"""The rack's configuration file, ``<state-dir>/racklet.yaml``, and the state-dir layout.

``racklet up`` writes the file (mode 0600: it holds the API token and BMC passwords); every CLI
command, every test and both processes of a running rack find the rack from it. Standard
Redfish tools can be pointed at the BMC URLs and credentials it lists.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from racklet.errors import ConfigError

CONFIG_NAME = "racklet.yaml"
CONFIG_ENV = "RACKLET_CONFIG"
DEFAULT_STATE_DIR = Path(".racklet")


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class ApiConfig(_Model):
    url: str
    ca_bundle: str = Field(alias="caBundle")
    token: str


class BmcConfig(_Model):
    url: str
    username: str
    password: str


class UnitConfig(_Model):
    name: str
    slot: int
    bmc: BmcConfig
    agent_port: int = Field(alias="agentPort")
    bmc_port: int | None = Field(default=None, alias="bmcPort")
    """Where the BMC itself listens, behind its switch port; ``bmc.url`` is the switch's side."""
    switch_ports: dict[str, int] = Field(default_factory=dict, alias="switchPorts")
    """Per management listener (``machine``, ``bulk``, ``machine:controller-N``), the loopback
    port where this unit's connections to it enter its switch port (the trust bundle's URLs)."""


class RmcConfig(_Model):
    """The Rack Management Controller: one Redfish endpoint aggregating every BMC."""

    url: str
    username: str
    password: str


class RackSettings(_Model):
    name: str = "rack-1"
    units: int = 5
    speed: float = 1.0
    profile: str = "raspberry-pi-4"
    psu_rated_watts: float = Field(default=100.0, alias="psuRatedWatts")
    payload_bytes: int = Field(default=65536, alias="payloadBytes")
    store: str = "sqlite"
    """``sqlite`` (embedded, in the state dir) or ``etcd://HOST:PORT``."""
    resync_seconds: float = Field(default=1.0, gt=0, alias="resyncSeconds")
    """Shortest resync period; large fleets stretch it (see ``resyncRate``)."""
    resync_rate: float = Field(default=50.0, gt=0, alias="resyncRate")
    """Most objects per second that resync re-checks: bounds idle CPU for a large fleet."""


class SwitchConfig(_Model):
    """The twin's switch: every unit's and BMC's traffic is relayed through its ports."""

    port_bandwidth_bps: float = Field(default=1e9, gt=0, alias="portBandwidthBps")
    uplink_bandwidth_bps: float = Field(default=1e9, gt=0, alias="uplinkBandwidthBps")


class ControllerConfig(_Model):
    api_port: int = Field(alias="apiPort")
    machine_port: int = Field(alias="machinePort")
    bulk_port: int | None = Field(default=None, alias="bulkPort")
    """The bulk-target server (large TUF targets, mutual TLS); None: targets come from the
    machine listener."""

    @property
    def machine_url(self) -> str:
        """Mutual-TLS endpoint for machines: boot server and heartbeats."""
        return f"https://127.0.0.1:{self.machine_port}"

    @property
    def targets_url(self) -> str | None:
        """Where units download TUF targets, when the bulk-target server runs."""
        if self.bulk_port is None:
            return None
        return f"https://127.0.0.1:{self.bulk_port}/boot/v1/targets/"  # boot's BULK_PREFIX


class RackConfig(_Model):
    api_version: str = Field(default="racklet.dev/v1alpha1", alias="apiVersion")
    kind: str = "RackConfig"
    state_dir: str = Field(alias="stateDir")
    rack: RackSettings
    api: ApiConfig
    controller: ControllerConfig
    units: list[UnitConfig]
    rmc: RmcConfig | None = None
    switch: SwitchConfig | None = None
    """None (a config from before the relaying switch): units and BMCs talk over loopback."""
    peer_controllers: list[ControllerConfig] = Field(default_factory=list, alias="peerControllers")
    """Controllers 2..N of ``racklet up --controllers N`` (etcd only); each has its own ports
    and its own config file, ``controller-N/racklet.yaml``, that points at this state dir."""

    def unit(self, name: str) -> UnitConfig:
        for unit in self.units:
            if unit.name == name:
                return unit
        known = ", ".join(u.name for u in self.units)
        raise ConfigError(f"unknown unit {name!r} (this rack has: {known})")

    @property
    def layout(self) -> StateLayout:
        return StateLayout(Path(self.state_dir))


@dataclass(frozen=True)
class StateLayout:
    """Where everything of one rack lives below its state dir."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def controller(self) -> Path:
        return self.root / "controller"

    @property
    def store(self) -> Path:
        return self.controller / "store.db"

    @property
    def boot(self) -> Path:
        return self.root / "boot"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def bmc(self, unit: str) -> Path:
        return self.root / "bmc" / unit

    def unit_storage(self, unit: str) -> Path:
        return self.root / "units" / unit


def write_private(path: Path, data: bytes | str) -> None:
    """Write a secret atomically with mode 0600."""
    write_atomic(path, data, mode=0o600)


def write_atomic(path: Path, data: bytes | bytearray | memoryview | str, mode: int = 0o644) -> None:
    """Write a file so readers see the old or the new content, never a part (temp + replace)."""
    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(config: RackConfig, path: Path | None = None) -> Path:
    path = path or config.layout.config
    text = yaml.safe_dump(config.model_dump(by_alias=True, mode="json"), sort_keys=False)
    write_private(path, text)
    return path


def locate(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config path: ``--config``, then ``$RACKLET_CONFIG``, then ``./.racklet/racklet.yaml``."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    return DEFAULT_STATE_DIR / CONFIG_NAME


def load(path: str | os.PathLike[str] | None = None) -> RackConfig:
    where = locate(path)
    try:
        raw = yaml.safe_load(Path(where).read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no running rack: {where} does not exist (start one with 'racklet up')"
        ) from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {where}: {exc}") from exc
    try:
        return RackConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where} is malformed: {field}: {first['msg']}") from exc
