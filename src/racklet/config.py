"""The rack's configuration file, ``<state-dir>/racklet.yaml``, and the state-dir layout.

``racklet up`` writes the file (mode 0600: it holds the API token and BMC passwords); every CLI
command, every test and both processes of a running rack find the rack from it. Standard
Redfish tools can be pointed at the BMC URLs and credentials it lists.

It is also where every Racklet process writes files below a state dir: :func:`atomic_file`
(and :func:`write_atomic`, :func:`write_private` over it) is the one temp-file-then-rename
write, durable (file and directory fsynced) and with the mode set explicitly, so what a state
dir exposes never depends on the user's umask; :func:`make_dir` and :func:`open_lock` do the
same for directories (0700) and lock files (0600).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


class ControlConfig(_Model):
    """The hardware side's control endpoint (faults, hot-swap): mutual TLS, the controller's
    identity only (``racklet.twin``'s ``_control``)."""

    url: str


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
    control: ControlConfig | None = None
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


DIR_MODE = 0o700
"""Every directory Racklet makes below a state dir: only the rack's own user enters it."""


def make_dir(path: Path, mode: int = DIR_MODE) -> Path:
    """Create ``path`` and any missing parents with exactly ``mode``, whatever the umask.

    Directories that already exist are left as they are (a parent such as ``/tmp`` is not
    Racklet's to change); the ones made here get ``mode`` set explicitly, because ``mkdir``
    alone would let a permissive umask (``umask 000``: 0777) through.
    """
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        os.chmod(directory, mode)
    return path


def fsync_dir(path: Path) -> None:
    """Make a rename or an unlink in ``path`` survive a power cut (where the platform can)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AtomicFile:
    """A file written beside its final name that takes the name only once complete.

    Write through :attr:`file`, or let a tool write to :attr:`temp` by name; :attr:`target`
    may be changed before the end (a content-addressed name known only after hashing).
    """

    def __init__(self, target: Path, mode: int, *, durable: bool = True) -> None:
        self.target = target
        self.mode = mode
        self.durable = durable
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        self.temp = Path(name)
        try:
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            self.temp.unlink(missing_ok=True)
            raise
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.file.write(data)

    def _commit(self) -> None:
        self.file.close()
        # By name, not through ``file``: a tool may have written (even recreated) ``temp``.
        fd = os.open(self.temp, os.O_RDONLY)
        try:
            os.fchmod(fd, self.mode)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.temp, self.target)
        if self.durable:
            fsync_dir(self.target.parent)


@contextlib.contextmanager
def atomic_file(path: Path, mode: int = 0o644, *, durable: bool = True) -> Iterator[AtomicFile]:
    """The one way Racklet writes a file: readers see the old or the new content, never a
    part; the new content is on disk (file and directory entry) when the block ends; the file
    has exactly ``mode`` whatever the umask; a failed block leaves no temp file behind.
    Missing parent directories are made with :data:`DIR_MODE`. ``durable=False`` skips the
    fsyncs, for scratch that a power cut makes worthless anyway (a VM's kernel and initrd,
    removed at the agent's next start): all else holds."""
    make_dir(path.parent)
    pending = AtomicFile(path, mode, durable=durable)
    try:
        yield pending
        pending._commit()
    except BaseException:
        pending.file.close()
        pending.temp.unlink(missing_ok=True)
        raise


def open_lock(path: Path) -> BinaryIO:
    """Open (creating, 0600 whatever the umask) a lock file for ``fcntl.flock``.

    The caller holds the lock for as long as the handle stays open; the kernel drops it when
    the process ends, however it ends (``kill -9`` included), so a lock is never stale.
    """
    make_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "r+b")
    except BaseException:
        os.close(fd)
        raise


SUPERVISOR_PID_FILE = "up.pid"
SUPERVISOR_LOCK_FILE = "up.lock"
FACTORY_RESET_SIGNAL = signal.SIGUSR1
"""What ``racklet up`` takes as "factory-reset this rack" (``racklet reset``, the dashboard)."""


def supervisor_pid(state_dir: Path) -> int | None:
    """The pid of the ``racklet up`` that holds ``state_dir`` (its lock is held), or None."""
    lock_path = state_dir / SUPERVISOR_LOCK_FILE
    if not lock_path.exists():
        return None
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a rack is running
        else:
            return None
    try:
        return int((state_dir / SUPERVISOR_PID_FILE).read_text())
    except (OSError, ValueError):
        raise ConfigError(
            f"a rack runs from {state_dir} but its {SUPERVISOR_PID_FILE} is unreadable"
        ) from None


def write_private(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Write a secret atomically with mode 0600."""
    write_atomic(path, data, mode=0o600, durable=durable)


def write_atomic(
    path: Path,
    data: bytes | bytearray | memoryview | str,
    mode: int = 0o644,
    *,
    durable: bool = True,
) -> None:
    """Write a whole file through :func:`atomic_file`."""
    with atomic_file(path, mode, durable=durable) as out:
        out.write(data.encode() if isinstance(data, str) else data)


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
