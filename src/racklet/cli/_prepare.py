"""Prepare a rack's state dir for ``racklet up``: CA, identities, boot payload, config.

Runs in the parent before either process starts, so both sides find everything they need on
disk. Secrets and keys are written with mode 0600. What already exists (the CA, identities,
the signing key, the token) is reused, so a rack keeps its trust across restarts, and so are
the ports recorded in racklet.yaml, so it keeps its addresses too (see ``_ports``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from racklet import boot
from racklet.audit import audit_files
from racklet.bmc import new_password, write_accounts
from racklet.cli import _ports
from racklet.cli.errors import UsageError
from racklet.config import (
    DIR_MODE,
    ApiConfig,
    BmcConfig,
    ControlConfig,
    ControllerConfig,
    RackConfig,
    RackSettings,
    RmcConfig,
    StateLayout,
    SwitchConfig,
    UnitConfig,
    load,
    make_dir,
    save,
    write_atomic,
    write_private,
)
from racklet.errors import ConfigError
from racklet.pki import CRL_NAME, RackCA, role_uri, write_crl
from racklet.rmc import RMC_USER, prepare_rmc

MAX_UNITS = 16
MAX_CONTROLLERS = 3
BMC_USER = "admin"


def check_writable(state_dir: Path) -> None:
    try:
        make_dir(state_dir)
        os.chmod(state_dir, DIR_MODE)  # the rack's trust anchors live here, whatever the umask
        write_private(state_dir / ".write-test", b"")
        (state_dir / ".write-test").unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"state dir {state_dir} is not writable: {reason}") from None


def wipe_for_factory_reset(layout: StateLayout) -> None:
    """Forget every secret and every unit's disk; keep only the declared state and the logs.

    What goes: the CA and every identity, the API token, BMC accounts and passwords, the TUF
    repository and its keys (so a new TUF root), the BMCs' state (A/B slots, rollback counters)
    and every unit's storage. What stays: the store (the rack's declared state, from which it
    is re-provisioned), the logs and the audit logs (the BMCs' and the RMC's are put back where
    they were: a reset is itself something to look into). ``prepare`` then builds everything
    anew.
    """
    wiped = ("bmc", "units", "rmc", "twin")
    aside = layout.root / ".audit-kept"
    kept = [p.relative_to(layout.root) for p in audit_files(layout.root)]
    kept = [p for p in kept if p.parts[0] in wiped]
    for relative in kept:
        (aside / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(layout.root / relative, aside / relative)
    for directory in (layout.pki, layout.boot, *(layout.root / name for name in wiped)):
        shutil.rmtree(directory, ignore_errors=True)
    for relative in kept:
        (layout.root / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(aside / relative, layout.root / relative)
    shutil.rmtree(aside, ignore_errors=True)
    for name in ("server.key", "server.crt", "client.key", "client.crt", "api.token"):
        (layout.controller / name).unlink(missing_ok=True)


def _previous_ports(layout: StateLayout, reassign: bool) -> dict[str, int]:
    """The ports the last ``racklet up`` of this state dir recorded, by role."""
    if reassign or not layout.config.exists():
        return {}
    try:
        return _ports.recorded(load(layout.config))
    except ConfigError as exc:
        raise ConfigError(f"{exc}; or {_ports.REASSIGN_HINT}") from exc


def _switched(controllers: int) -> list[str]:
    """The management listeners a unit reaches through its switch port."""
    return ["machine", "bulk", *(f"machine:controller-{i}" for i in range(2, controllers + 1))]


def _port_roles(units: int, controllers: int) -> list[str]:
    roles = ["api", "machine", "bulk"]
    for index in range(units):
        name = f"unit-{index + 1}"
        roles += [f"bmc:{name}", f"agent:{name}", f"bmcport:{name}"]
        roles += [f"switch:{name}:{role}" for role in _switched(controllers)]
    roles += ["rmc", "control"]
    for index in range(2, controllers + 1):
        roles += [f"api:controller-{index}", f"machine:controller-{index}"]
    return roles


CONTROLLER_CLIENT_DAYS = 3
"""The controller's client identity (Operator on every BMC) is short-lived; the controller's
PKI maintenance renews it with a third of its life left and its clients follow the file."""


def _usable(ca: RackCA, crt: Path, role: str, *, fresh: bool) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        cert.verify_directly_issued_by(ca.cert)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    if role_uri(cert) != ca.spiffe_id(role):
        return False
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return not fresh or left > (cert.not_valid_after_utc - cert.not_valid_before_utc) / 3


def _ensure_identity(
    ca: RackCA, directory: Path, stem: str, *, fresh: bool = False, **issue: Any
) -> None:
    """Issue ``stem.key``/``stem.crt`` unless a usable one is there: from this CA and
    carrying the role asked for (one from before roles, an old rack's, is re-issued here:
    that is how an old state dir migrates); with ``fresh``, also not due for renewal (a
    short-lived identity after the rack was down)."""
    key, crt = directory / f"{stem}.key", directory / f"{stem}.crt"
    if key.exists() and _usable(ca, crt, issue["role"], fresh=fresh):
        return
    ca.issue(**issue).write(directory, stem)


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def prepare(
    state_dir: Path,
    *,
    units: int,
    speed: float,
    profile: str,
    psu_rated_watts: float,
    payload_bytes: int,
    store: str = "sqlite",
    controllers: int = 1,
    reassign_ports: bool = False,
    uplink_bandwidth_bps: float = 1e9,
    port_bandwidth_bps: float = 1e9,
) -> RackConfig:
    if not 1 <= units <= MAX_UNITS:
        raise UsageError(f"--units must be between 1 and {MAX_UNITS}, got {units}")
    if store != "sqlite" and not store.startswith("etcd://"):
        raise UsageError(f"--store must be 'sqlite' or etcd://HOST:PORT, got {store!r}")
    if not 0 < speed <= 1000:
        raise UsageError(f"--speed must be greater than 0 and at most 1000, got {speed}")
    if not 1 <= controllers <= MAX_CONTROLLERS:
        raise UsageError(
            f"--controllers must be between 1 and {MAX_CONTROLLERS}, got {controllers}"
        )
    if controllers > 1 and store == "sqlite":
        raise UsageError("--controllers above 1 needs a shared store: --store etcd://HOST:PORT")
    state_dir = state_dir.resolve()
    check_writable(state_dir)
    layout = StateLayout(state_dir)
    # First, so a taken port fails the start before anything is generated.
    previous = _previous_ports(layout, reassign_ports)
    port = _ports.assign(_port_roles(units, controllers), previous, layout.config)
    settings = RackSettings(
        units=units,
        speed=speed,
        profile=profile,
        psuRatedWatts=psu_rated_watts,
        payloadBytes=payload_bytes,
        store=store,
    )

    make_dir(layout.pki)
    ca = RackCA.load(layout.pki) if layout.ca_cert.exists() else RackCA.create(layout.pki)
    if not (layout.pki / CRL_NAME).exists():
        write_crl(ca, layout.pki)  # empty: the machine listener refuses to run without one
    make_dir(layout.controller)
    _ensure_identity(
        ca, layout.controller, "server", common_name="racklet-controller", role="controller"
    )
    _ensure_identity(
        ca,
        layout.controller,
        "client",
        common_name="racklet-controller",
        role="controller",
        server=False,
        client=True,
        days=CONTROLLER_CLIENT_DAYS,
        fresh=True,
    )

    tuf_root = _ensure_boot_repo(layout, settings)

    controller = ControllerConfig(
        apiPort=port["api"], machinePort=port["machine"], bulkPort=port["bulk"]
    )
    peers = [
        ControllerConfig(apiPort=port[f"api:{n}"], machinePort=port[f"machine:{n}"])
        for n in (f"controller-{i}" for i in range(2, controllers + 1))
    ]
    token = _read_secret(layout.controller / "api.token") or secrets.token_urlsafe(32)
    write_private(layout.controller / "api.token", token)

    unit_configs = []
    for index in range(units):
        name = f"unit-{index + 1}"
        bmc_dir = layout.bmc(name)
        make_dir(bmc_dir)
        _ensure_identity(ca, bmc_dir, "server", common_name=f"{name}-bmc", role=f"bmc/{name}")
        # The unit's identity key is made by its BMC and certified by the controller through
        # Redfish CertificateService (docs/pki.md); one made here by an older racklet goes.
        for legacy in ("identity.key", "identity.crt"):
            (bmc_dir / legacy).unlink(missing_ok=True)
        password = _read_secret(bmc_dir / "admin.password")
        if password is None:
            password = new_password()
            write_private(bmc_dir / "admin.password", password)
            write_accounts(bmc_dir / "accounts.json", BMC_USER, password)
        # The unit reaches each management listener through its switch port (the twin relays
        # it over the unit's port and the uplink): these loopback ports are its addresses.
        via = {role: port[f"switch:{name}:{role}"] for role in _switched(controllers)}
        machine_urls = [f"https://127.0.0.1:{via['machine']}"]
        machine_urls += [
            f"https://127.0.0.1:{via[f'machine:controller-{i}']}" for i in range(2, controllers + 1)
        ]
        trust = {
            "bootServer": machine_urls[0],
            # Every controller's machine listener: heartbeats go to each, so whoever leads
            # sees the unit (controllers keep heartbeats in memory, not in the store).
            "bootServers": machine_urls,
            # Large targets: the bulk-target server (its path, through the switch).
            "targetsUrl": f"https://127.0.0.1:{via['bulk']}/boot/v1/targets/",
            "tufRoot": tuf_root,
            "channel": "stable",
            "caBundle": ca.cert_pem.decode(),
        }
        write_atomic(bmc_dir / "trust.json", json.dumps(trust, indent=2), mode=0o644)
        make_dir(layout.unit_storage(name))
        bmc_port, agent_port = port[f"bmc:{name}"], port[f"agent:{name}"]
        unit_configs.append(
            UnitConfig(
                name=name,
                slot=index + 1,
                bmc=BmcConfig(
                    url=f"https://127.0.0.1:{bmc_port}", username=BMC_USER, password=password
                ),
                agentPort=agent_port,
                bmcPort=port[f"bmcport:{name}"],
                switchPorts=via,
            )
        )
    rmc_password = prepare_rmc(layout.root / "rmc", ca)
    rmc = RmcConfig(
        url=f"https://127.0.0.1:{port['rmc']}", username=RMC_USER, password=rmc_password
    )
    # The hardware side's control endpoint (faults, hot-swap) serves with its own identity.
    _ensure_identity(ca, layout.root / "twin", "server", common_name="racklet-twin", role="twin")
    make_dir(layout.logs)
    config = RackConfig(
        stateDir=str(state_dir),
        rack=settings,
        api=ApiConfig(
            url=f"https://127.0.0.1:{controller.api_port}",
            caBundle=str(layout.ca_cert),
            token=token,
        ),
        controller=controller,
        units=unit_configs,
        rmc=rmc,
        control=ControlConfig(url=f"https://127.0.0.1:{port['control']}"),
        switch=SwitchConfig(
            uplinkBandwidthBps=uplink_bandwidth_bps, portBandwidthBps=port_bandwidth_bps
        ),
        peerControllers=peers,
    )
    save(config)
    _save_peer_configs(config)
    return config


def peer_config_path(layout: StateLayout, index: int) -> Path:
    """The config controller ``index`` (2..N) runs from; also a CLI ``--config`` for its API."""
    return layout.root / f"controller-{index}" / "racklet.yaml"


def _save_peer_configs(config: RackConfig) -> None:
    """Controller N's own racklet.yaml: the rack's, with its ports and API URL, same state dir."""
    for index, peer in enumerate(config.peer_controllers, start=2):
        own = config.model_copy(
            update={
                "controller": peer,
                "api": config.api.model_copy(update={"url": f"https://127.0.0.1:{peer.api_port}"}),
                "peer_controllers": [],
            }
        )
        save(own, peer_config_path(config.layout, index))


def _ensure_boot_repo(layout: StateLayout, settings: RackSettings) -> str:
    """The TUF repository and default payload, built and signed at first start; its root."""
    return boot.ensure_boot_repository(layout.boot, settings.payload_bytes)
