"""What the boot path takes and hands on: its limits, the BMC's trust material, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from racklet.boot._manifest import AgentConfig, PayloadManifest, valid_name
from racklet.boot._payload import MAX_PAYLOAD_BYTES
from racklet.boot.errors import TrustError

DEFAULT_CHANNEL = "stable"


@dataclass(frozen=True)
class BootLimits:
    """Every size limit and timeout of the bootstrap client, in one place.

    Timeouts are wall-clock seconds (they bound network I/O, not simulated events).
    """

    max_metadata_bytes: int = 512 * 1024
    max_timestamp_bytes: int = 16 * 1024
    max_pointer_bytes: int = 16 * 1024
    max_root_rotations: int = 64
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    max_agent_config_bytes: int = 64 * 1024
    link_timeout: float = 10.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 900.0
    chunk_bytes: int = 1 << 20
    health_deadline_seconds: float = 120.0
    """Simulated seconds a trial boot has to pass its health check before it is abandoned."""
    carrier_wait_seconds: float = 10.0
    """Simulated seconds the bootstrap waits for Ethernet carrier before giving up the network."""

    def __post_init__(self) -> None:
        sizes = ("max_metadata_bytes", "max_timestamp_bytes", "max_pointer_bytes")
        for name in (*sizes, "max_payload_bytes", "max_root_rotations"):
            if getattr(self, name) <= 0:
                raise ValueError(f"BootLimits.{name} must be positive")
        if min(self.link_timeout, self.connect_timeout, self.read_timeout, self.total_timeout) <= 0:
            raise ValueError("BootLimits timeouts must be positive")
        if not 0 < self.health_deadline_seconds <= 3600:
            raise ValueError("BootLimits.health_deadline_seconds must be in (0, 3600]")
        if self.chunk_bytes < 4096:
            raise ValueError("BootLimits.chunk_bytes must be at least 4096")


@dataclass(frozen=True)
class TrustBundle:
    """The unit's trust anchor, held by its BMC: where to boot from and whom to believe.

    ``tuf_root`` is the TUF root metadata (JSON bytes) every boot starts its chain of trust
    from; ``channel`` the release channel the unit follows. ``controllers`` lists every
    controller's machine URL (more than one on an HA rack; the first is ``boot_server``).
    """

    boot_server: str
    tuf_root: bytes = field(repr=False)
    ca_bundle_pem: str = field(repr=False)
    channel: str = DEFAULT_CHANNEL
    controllers: tuple[str, ...] = ()
    targets_url: str | None = None
    """Where TUF targets (the large files) come from, if not ``{boot_server}/boot/v1/targets/``:
    the controller's bulk-target server. Targets are verified against the metadata either way."""

    @property
    def machine_urls(self) -> tuple[str, ...]:
        return self.controllers or (self.boot_server,)

    @classmethod
    def from_link(cls, answer: dict[str, Any]) -> TrustBundle:
        server, ca = answer.get("bootServer"), answer.get("caBundle")
        if not isinstance(server, str) or not server or not isinstance(ca, str) or not ca:
            raise TrustError("the BMC's trust bundle lacks bootServer or caBundle")
        if not server.startswith("https://"):
            raise TrustError(f"the boot server must be an https:// URL, got {server!r}")
        root = answer.get("tufRoot")
        if not isinstance(root, str) or not root:
            raise TrustError("the BMC's trust bundle has no TUF root (tufRoot)")
        channel = answer.get("channel", DEFAULT_CHANNEL)
        if not isinstance(channel, str) or not valid_name(channel):
            raise TrustError(f"the BMC's trust bundle names an invalid channel {channel!r}")
        servers = answer.get("bootServers", [server])
        if not isinstance(servers, list) or not servers:
            raise TrustError("the BMC's trust bundle has an empty or malformed bootServers list")
        for url in servers:
            if not isinstance(url, str) or not url.startswith("https://"):
                raise TrustError(f"every boot server must be an https:// URL, got {url!r}")
        controllers = tuple(str(url).rstrip("/") for url in servers)
        targets = answer.get("targetsUrl")
        if targets is not None and (
            not isinstance(targets, str) or not targets.startswith("https://")
        ):
            raise TrustError(f"the targets URL must be an https:// URL, got {targets!r}")
        return cls(server.rstrip("/"), root.encode(), ca, channel, controllers, targets)


@dataclass(frozen=True)
class UnitIdentity:
    """The unit's TLS identity (client and server), held by its BMC, kept only in memory."""

    name: str
    key_pem: str = field(repr=False)
    cert_pem: str

    @classmethod
    def from_link(cls, answer: dict[str, Any]) -> UnitIdentity:
        values = [answer.get(k) for k in ("name", "key", "cert")]
        if not all(isinstance(v, str) and v for v in values):
            raise TrustError("the BMC's identity answer lacks name, key or cert")
        name, key, cert = (str(v) for v in values)
        return cls(name, key, cert)


@dataclass(frozen=True)
class TrialBoot:
    """A boot of a freshly written slot, once: the OS commits it after its health check."""

    slot: str
    deadline_seconds: float
    """Simulated seconds from the start of the OS to a passed health check."""


@dataclass(frozen=True)
class BootedPayload:
    """A verified, installed payload and everything its OS needs to run.

    ``slot`` is the A/B slot it was booted from; ``trial`` is set on a try-boot, whose OS
    must pass its health check and commit the slot (over the link) before the deadline.
    """

    unit: str
    manifest: PayloadManifest
    agent: AgentConfig
    identity: UnitIdentity
    trust: TrustBundle
    slot: str = "A"
    trial: TrialBoot | None = None
    dropped_peers: tuple[tuple[str, str], ...] = ()
    """(peer, why) of the rack's units this boot's download dropped (bad bytes, failures):
    the OS reports them in its first heartbeat, and the controller records an event."""
