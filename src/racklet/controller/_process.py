"""The controller process as a list of services (:class:`Controller`).

In start order: the store (declares the rack and its units), the BMC clients, the CRL file,
the leader election (etcd only), then the API listener, the machine listener and the bulk
target server, and the leader-only group: the runtime (informers, workers, resync), the
BMCs' event streams (a power change wakes its unit's reconciler), TUF
timestamp refresh, PKI maintenance, unit certificates and the GitOps watcher. Stopping
unwinds the same list. ``python -m racklet.controller`` and the HA tests build this one
object; a test swaps the store or the BMC clients, never the wiring.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from racklet import config as rack_config
from racklet.api import (
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    Fault,
    GitSource,
    MicroVM,
    MicroVMSet,
    ObjectMeta,
    Rack,
    RackSpec,
)
from racklet.audit import AuditLog
from racklet.boot import BulkTargetServer
from racklet.children import supervisor_crash
from racklet.controller._bmc_events import BmcEvents
from racklet.controller._certificates import UnitCertificates
from racklet.controller._gitops import GitSources
from racklet.controller._hardware import HardwareControl
from racklet.controller._heartbeats import HeartbeatRegistry
from racklet.controller._housekeeping import TufRefresher
from racklet.controller._http import create_api_app, create_machine_app
from racklet.controller._leader import LeaderElection
from racklet.controller._metrics import ControllerMetrics
from racklet.controller._p2p import PeerFinder, peer_finder
from racklet.controller._pki_maintenance import PkiMaintenance
from racklet.controller._prometheus_targets import PrometheusTargets
from racklet.controller._releases import register_release_reconcilers
from racklet.controller._runtime import Registry, Runtime
from racklet.controller._services import Hooks, Services
from racklet.controller._ui_history import UnitHistory
from racklet.controller._workloads import VmConsoles
from racklet.controller.errors import ControllerError
from racklet.controller.reconcilers import (
    ComputeUnitReconciler,
    FaultReconciler,
    MicroVMReconciler,
    MicroVMSetReconciler,
    RackReconciler,
)
from racklet.log import get_logger
from racklet.net import AppServer, ca_trust_domain, client_context, server_context, spiffe_id
from racklet.pki import CRL_NAME, RackCA, server_context_with_crl, write_crl
from racklet.redfish import RedfishClient
from racklet.store import AlreadyExists, Conflict, EtcdStore, NotFound, SqliteStore, Store

log = get_logger("controller")


async def declare(store: Store, config: rack_config.RackConfig) -> None:
    """Create the Rack and one ComputeUnit per configured unit, if they do not exist yet."""
    try:
        await store.get(Rack, config.rack.name)
    except NotFound:
        rack = Rack(
            metadata=ObjectMeta(name=config.rack.name),
            spec=RackSpec(psu_rated_watts=config.rack.psu_rated_watts),
        )
        with contextlib.suppress(AlreadyExists):
            await store.create(rack)
    for unit in config.units:
        try:
            existing = await store.get(ComputeUnit, unit.name)
        except NotFound:
            existing = None
        if existing is not None:
            if existing.spec.bmc.url != unit.bmc.url:
                # Where a unit's BMC answers is inventory (racklet.yaml), not user intent.
                existing.spec.bmc.url = unit.bmc.url
                with contextlib.suppress(Conflict):
                    await store.update(existing)
        else:
            obj = ComputeUnit(
                metadata=ObjectMeta(name=unit.name, labels={"racklet.dev/rack": config.rack.name}),
                spec=ComputeUnitSpec(slot=unit.slot, power="On", bmc=BmcRef(url=unit.bmc.url)),
            )
            with contextlib.suppress(AlreadyExists):
                await store.create(obj)


def open_store(config: rack_config.RackConfig) -> SqliteStore | EtcdStore:
    """The store ``rack.store`` names; ``etcds://`` is mutual TLS with the rack CA."""
    choice = config.rack.store
    if choice == "sqlite":
        return SqliteStore(config.layout.store)
    parsed = urlsplit(choice)
    if parsed.scheme == "etcd" and parsed.netloc:
        return EtcdStore(f"http://{parsed.netloc}")
    if parsed.scheme == "etcds" and parsed.netloc:
        tls = config.layout.controller
        context = client_context(  # follows the short-lived client identity as it is renewed
            config.layout.ca_cert, tls / "client.crt", tls / "client.key", follow=True
        )
        return EtcdStore(f"https://{parsed.netloc}", verify=context)
    raise ControllerError(
        f"rack.store: {choice!r} is not 'sqlite', 'etcd://HOST:PORT' or 'etcds://HOST:PORT'"
    )


def bmc_clients(config: rack_config.RackConfig) -> dict[str, RedfishClient]:
    """One Redfish client per unit's BMC, logging in with the controller's client identity
    (never a password) and pinned to that unit's BMC (``spiffe://<rack>/bmc/<unit>``)."""
    layout = config.layout
    client_cert = (layout.controller / "client.crt", layout.controller / "client.key")
    presented = client_cert if all(p.exists() for p in client_cert) else None
    rack_domain = ca_trust_domain(layout.ca_cert.read_bytes())
    return {
        unit.name: RedfishClient(
            unit.bmc.url,
            unit.bmc.username,
            None,  # the client certificate is the controller's only login, never a password
            ca_bundle=layout.ca_cert,
            client_cert=presented,
            expect=spiffe_id(rack_domain, "bmc", unit.name),
            crl=_crl(layout),
        )
        for unit in config.units
    }


def rmc_client(config: rack_config.RackConfig) -> RedfishClient | None:
    """The rack's RMC, for renewing its certificate: the controller's client identity (a
    ``RackController`` there too), pinned to ``spiffe://<rack>/rmc``; None without an RMC."""
    if config.rmc is None:
        return None
    layout = config.layout
    client_cert = (layout.controller / "client.crt", layout.controller / "client.key")
    rack_domain = ca_trust_domain(layout.ca_cert.read_bytes())
    return RedfishClient(
        config.rmc.url,
        config.rmc.username,
        None,  # the client certificate, never the RMC's admin password
        ca_bundle=layout.ca_cert,
        client_cert=client_cert if all(p.exists() for p in client_cert) else None,
        expect=spiffe_id(rack_domain, "rmc"),
        crl=_crl(layout),
    )


def _crl(layout: rack_config.StateLayout) -> Path | None:
    """The rack CA's CRL, for checking the BMCs' and the RMC's certificates as they are
    checked against it everywhere else (None on a rack initialised before it had one)."""
    crl = layout.pki / CRL_NAME
    return crl if crl.exists() else None


def controller_identities(config: rack_config.RackConfig) -> frozenset[str]:
    """Who this rack's controllers are at a BMC: the role identity of their client
    certificate (one for every controller of an HA rack)."""
    try:
        domain = ca_trust_domain(config.layout.ca_cert.read_bytes())
    except (OSError, ValueError):
        return frozenset()
    return frozenset({spiffe_id(domain, "controller")})


def _boot_app(repo: Path, peers: PeerFinder | None = None) -> object | None:
    try:
        from racklet.boot.server import create_boot_app
    except ImportError as exc:
        log.error("no boot server in this install (%s); /boot/v1 is not served", exc)
        return None
    return create_boot_app(repo, peers)


def check_port(port: int) -> None:
    """Fail with a clear message before uvicorn would, if the port is taken."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise OSError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from exc


class _Listener:
    """An :class:`AppServer` made at start (its TLS context reads files that earlier services
    write, such as the CRL), after checking that its port is free."""

    def __init__(self, name: str, app: Any, port: int, context: Callable[[], ssl.SSLContext]):
        self._name, self._app, self._port, self._context = name, app, port, context
        self._server: AppServer | None = None

    async def start(self) -> None:
        check_port(self._port)
        server = AppServer(self._app, port=self._port, ssl_context=self._context(), name=self._name)
        await server.start()
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()


class _Bulk:
    """The bulk-target server on ``controller.bulkPort`` (none if the rack names no port)."""

    def __init__(self, config: rack_config.RackConfig) -> None:
        self._config = config
        self._server: BulkTargetServer | None = None

    async def start(self) -> None:
        port = self._config.controller.bulk_port
        if port is None:  # units then fetch targets from the machine listener
            return
        layout = self._config.layout
        tls = layout.controller
        context = server_context_with_crl(
            tls / "server.crt", tls / "server.key", ca=layout.ca_cert, crl=layout.pki / CRL_NAME
        )
        server = BulkTargetServer(layout.boot / "repo" / "targets", context, port=port)
        await server.start()
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()


class Controller:
    """The management side of one rack: every part, and the order they run in.

    ``store`` and ``bmcs`` default to what ``config`` names; the controller owns (closes)
    whatever it is given. ``election_ttl``/``election_poll`` tune the etcd campaign.
    ``audit_dir``: where this controller keeps its audit.log (default ``controller/``).
    """

    def __init__(
        self,
        config: rack_config.RackConfig,
        *,
        store: SqliteStore | EtcdStore | None = None,
        bmcs: Mapping[str, RedfishClient] | None = None,
        identity: str | None = None,
        election_ttl: int = 5,
        election_poll: float = 1.0,
        audit_dir: Path | None = None,
    ) -> None:
        self.config = config
        layout = config.layout
        self.store = store if store is not None else open_store(config)
        self.clients = dict(bmcs) if bmcs is not None else bmc_clients(config)
        # Injected BMC clients (a test's) mean no RMC traffic either.
        self.rmc = rmc_client(config) if bmcs is None else None
        self.identity = identity or (
            f"{socket.gethostname()}/{os.getpid()}/api:{config.controller.api_port}"
        )
        self.metrics = ControllerMetrics()
        self.audit = AuditLog((audit_dir or layout.controller) / "audit.log")
        # The agents' heartbeat intervals are in the twin's time, --speed times faster.
        self.heartbeats = HeartbeatRegistry(time_scale=config.rack.speed)
        self.services = Services()
        self.election: LeaderElection | None = None
        acting: Store = self.store
        fence = None
        if isinstance(self.store, EtcdStore):
            self.election = LeaderElection(
                self.store.gateway,
                self.store.prefix + b"leader",
                self.identity,
                ttl=election_ttl,
                poll=election_poll,
                on_elected=self.services.elected,
                on_deposed=self.services.deposed,
            )
            fenced = self.store.fenced(self.election.fence)
            acting, fence = fenced, fenced.check_fence
            election = self.election
            self.metrics.watch_leader(lambda: election.is_leader)
        self.acting = acting
        """The store view reconcilers write through (fenced by the leader key on etcd)."""
        self.registry = Registry()
        self.runtime = Runtime(
            self.registry,
            self.store,
            resync_seconds=config.rack.resync_seconds,
            resync_rate=config.rack.resync_rate,
            observer=self.metrics,
        )
        enqueue = self.runtime.enqueue
        self.heartbeats.watch(lambda unit: enqueue("ComputeUnit", unit))  # silent: look now
        tls = layout.controller
        self.vm_consoles = VmConsoles(
            self.store,
            self.heartbeats,
            layout.ca_cert,
            tls / "client.crt",
            tls / "client.key",
            crl=_crl(layout),
        )
        """The controller's client of the units' agents: VM consoles, early heartbeats."""
        microvms = MicroVMReconciler(
            acting,
            self.heartbeats,
            wake=lambda name: enqueue("MicroVM", name),
            wake_set=lambda name: enqueue("MicroVMSet", name),
            assigned=self.vm_consoles.beat_now,
        )
        self.registry.register(MicroVM, microvms)
        self.registry.register(MicroVMSet, MicroVMSetReconciler(acting))
        self.certificates = UnitCertificates(
            acting,
            self.clients,
            layout.pki,
            observer=self.metrics,
            rmc=None if self.rmc is None else (config.rack.name, self.rmc),
        )
        """Unit identities and BMC certificates; woken by evidence of a new board."""
        self.registry.register(
            ComputeUnit,
            ComputeUnitReconciler(
                acting,
                self.clients,
                self.heartbeats,
                rack_name=config.rack.name,
                observer=self.metrics,
                fence=fence,
                wake=lambda name: enqueue("ComputeUnit", name),
                identities=controller_identities(config),
                on_phase=microvms.unit_changed,
                new_board=self.certificates.wake,
            ),
        )
        self.registry.register(
            Rack,
            RackReconciler(
                acting, observer=self.metrics, controller=self.identity, rack_name=config.rack.name
            ),
        )
        self.hardware = (
            None
            if config.control is None
            else HardwareControl.for_state_dir(config.control.url, layout.root)
        )
        """The hardware side's control endpoint (faults, hot-swap), if this rack has one."""
        self.registry.register(
            Fault,
            FaultReconciler(
                acting,
                self.hardware,
                wake=lambda name: enqueue("ComputeUnit", name),
                identity=self.identity,
                crash=supervisor_crash(),  # racklet up's, when it started this process
            ),
        )
        self.gitops = GitSources(acting, layout.controller / "gitops", enqueue)
        self.registry.register(GitSource, self.gitops)
        register_release_reconcilers(
            self.registry, acting, layout.boot, enqueue=enqueue, bmcs=self.clients
        )
        self.history = UnitHistory(self.store, config.rack.name)
        """The dashboard's last hour of samples (every controller keeps its own)."""
        cert, key = tls / "server.crt", tls / "server.key"
        api_app = create_api_app(
            self.store,
            token=config.api.token,
            metrics=self.metrics,
            enqueue=enqueue,
            rack_name=config.rack.name,
            audit=self.audit,
            consoles=self.clients,
            slots=self.hardware,
            state_dir=layout.root,
            history=self.history,
            vm_consoles=self.vm_consoles,
        )
        machine_app = create_machine_app(
            self.heartbeats,
            enqueue=enqueue,
            boot_app=_boot_app(  # type: ignore[arg-type]
                layout.boot / "repo", peer_finder(self.heartbeats, self.store, config.rack.name)
            ),
            store=self.store,
        )
        add = self.services.add
        add("audit log", Hooks(on_stop=self.audit.aclose))
        add("heartbeat timers", Hooks(on_stop=self.heartbeats.aclose))
        add("bmc clients", Hooks(on_stop=self._close_clients))
        add("vm consoles", Hooks(on_stop=self.vm_consoles.aclose))
        if self.hardware is not None:
            add("hardware control", Hooks(on_stop=self.hardware.aclose))
        add("store", Hooks(lambda: declare(self.store, config), self.store.close))
        add("dashboard history", self.history)
        add("crl", Hooks(self._ensure_crl))
        if self.election is not None:
            add("leader election", self.election)
        else:
            self.services.add_leadership()
        add("runtime", self.runtime, leader_only=True)
        self.bmc_events = BmcEvents(
            self.clients,
            lambda name: enqueue("ComputeUnit", name),
            reopened=self.certificates.wake,  # the BMC came back: maybe as a new board
        )
        """Each BMC's event stream: a power change wakes its unit's reconciler at once."""
        add("bmc events", self.bmc_events, leader_only=True)
        api_port, machine_port = config.controller.api_port, config.controller.machine_port
        add("api", _Listener("api", api_app, api_port, lambda: server_context(cert, key)))

        def machine_context() -> ssl.SSLContext:
            # Mutual TLS, and a revoked unit certificate fails the handshake.
            return server_context_with_crl(cert, key, ca=layout.ca_cert, crl=layout.pki / CRL_NAME)

        add("machine", _Listener("machine", machine_app, machine_port, machine_context))
        add("bulk targets", _Bulk(config))
        observer = self.metrics
        add("tuf refresh", TufRefresher(layout.boot, observer=observer), leader_only=True)
        add(
            "pki maintenance",
            PkiMaintenance(layout.root, observer=observer),
            leader_only=True,
        )
        add("unit certificates", self.certificates, leader_only=True)
        add("gitops watcher", self.gitops, leader_only=True)
        add(
            "prometheus targets",
            PrometheusTargets(config, acting, observer=observer),
            leader_only=True,
        )

    async def _ensure_crl(self) -> None:
        pki = self.config.layout.pki
        if not (pki / CRL_NAME).exists():
            # The CA's holder keeps a CRL; an empty one until something is revoked.
            await asyncio.to_thread(write_crl, RackCA.load(pki), pki)

    async def _close_clients(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        if self.rmc is not None:
            await self.rmc.aclose()

    @property
    def leading(self) -> bool:
        """Whether the leader-only services (reconcilers, chores) run here now."""
        return self.services.leading

    async def start(self) -> None:
        """Start every service in order; on a failure, stop what started and re-raise."""
        await self.services.start()
        log.info(
            "controller of %s up: API on %d, machines on %d",
            self.config.rack.name,
            self.config.controller.api_port,
            self.config.controller.machine_port,
        )

    async def stop(self) -> None:
        await self.services.stop()

    async def __aenter__(self) -> Controller:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
