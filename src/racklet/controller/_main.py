"""``python -m racklet.controller --state-dir D``: the management side of one rack.

Loads ``D/racklet.yaml``, opens the store (``rack.store``: ``sqlite`` in the state dir, or
``etcd://HOST:PORT`` / ``etcds://HOST:PORT`` shared with other controllers), declares the rack
and its units (creating only what is missing, so user changes survive restarts), and runs the
reconcilers, the API listener (server TLS, bearer token) and the machine listener (mutual TLS:
heartbeats and the boot server) until SIGTERM or SIGINT, then stops everything and exits 0.
On etcd it campaigns for the lead: every controller serves the API, only the leader runs the
reconcilers, through a fenced store view. A bad config or a port that cannot be bound is one
line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from racklet import config as rack_config
from racklet.api import (
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    GitSource,
    MicroVM,
    ObjectMeta,
    Rack,
    RackSpec,
)
from racklet.audit import AuditLog
from racklet.boot import BulkTargetServer
from racklet.controller._certificates import UnitCertificates
from racklet.controller._gitops import GitSources
from racklet.controller._heartbeats import HeartbeatRegistry
from racklet.controller._housekeeping import TufRefresher
from racklet.controller._http import create_api_app, create_machine_app
from racklet.controller._leader import LeaderElection
from racklet.controller._metrics import ControllerMetrics
from racklet.controller._releases import PkiMaintenance, register_release_reconcilers
from racklet.controller._runtime import Registry, Runtime
from racklet.controller.errors import ControllerError
from racklet.controller.reconcilers import (
    ComputeUnitReconciler,
    MicroVMReconciler,
    RackReconciler,
)
from racklet.errors import RackletError
from racklet.log import configure, get_logger
from racklet.net import (
    AppServer,
    ca_trust_domain,
    client_context,
    run_loop,
    server_context,
    spiffe_id,
)
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


def _bulk_server(config: rack_config.RackConfig) -> BulkTargetServer | None:
    """Large targets on their own mutual-TLS port (``controller.bulkPort`` in racklet.yaml),
    with the machine listener's identity, rack CA and CRL; None if the rack names no port
    (units then fetch targets from ``/boot/v1/targets/`` on the machine listener)."""
    port = config.controller.bulk_port
    if port is None:
        return None
    layout = config.layout
    tls = layout.controller
    context = server_context_with_crl(
        tls / "server.crt", tls / "server.key", ca=layout.ca_cert, crl=layout.pki / CRL_NAME
    )
    return BulkTargetServer(layout.boot / "repo" / "targets", context, port=port)


def _boot_app(repo: Path) -> object | None:
    try:
        from racklet.boot.server import create_boot_app
    except ImportError as exc:
        log.error("no boot server in this install (%s); /boot/v1 is not served", exc)
        return None
    return create_boot_app(repo)


async def run(
    config: rack_config.RackConfig, stop: asyncio.Event, *, audit_dir: Path | None = None
) -> None:
    """``audit_dir``: where this controller keeps its audit.log (default ``controller/``; the
    peers of an HA rack each keep theirs in their own ``controller-N/``)."""
    layout = config.layout
    audit = AuditLog((audit_dir or layout.controller) / "audit.log")
    tls_dir = layout.controller
    client_cert = (tls_dir / "client.crt", tls_dir / "client.key")
    rack_domain = ca_trust_domain(layout.ca_cert.read_bytes())
    presented = client_cert if all(p.exists() for p in client_cert) else None
    store = open_store(config)
    runtime: Runtime | None = None
    election: LeaderElection | None = None
    acting: Store = store
    fence = None
    identity = f"{socket.gethostname()}/{os.getpid()}/api:{config.controller.api_port}"
    if isinstance(store, EtcdStore):

        async def elected() -> None:
            assert runtime is not None
            await runtime.start()
            await gitops.start_watching(runtime.enqueue)

        async def deposed() -> None:
            assert runtime is not None
            await gitops.stop_watching()
            await runtime.stop()

        election = LeaderElection(
            store.gateway,
            store.prefix + b"leader",
            identity,
            on_elected=elected,
            on_deposed=deposed,
        )
        fenced = store.fenced(election.fence)
        acting, fence = fenced, fenced.check_fence
    clients = {
        unit.name: RedfishClient(
            unit.bmc.url,
            unit.bmc.username,
            None,  # the client certificate is the controller's only login, never a password
            ca_bundle=layout.ca_cert,
            client_cert=presented,
            expect=spiffe_id(rack_domain, "bmc", unit.name),
        )
        for unit in config.units
    }
    metrics = ControllerMetrics()
    heartbeats = HeartbeatRegistry()
    registry = Registry()
    registry.register(
        ComputeUnit,
        ComputeUnitReconciler(
            acting,
            clients,
            heartbeats,
            rack_name=config.rack.name,
            observer=metrics,
            fence=fence,
            wake=lambda name: enqueue("ComputeUnit", name),
        ),
    )
    registry.register(Rack, RackReconciler(acting, observer=metrics, controller=identity))
    registry.register(MicroVM, MicroVMReconciler(acting, heartbeats))
    gitops = GitSources(acting, layout.controller / "gitops")
    registry.register(GitSource, gitops)
    refresher = TufRefresher(layout.boot, is_leader=lambda: election is None or election.is_leader)

    def enqueue(kind: str, name: str) -> None:
        if runtime is not None:
            runtime.enqueue(kind, name)

    register_release_reconcilers(registry, acting, layout.boot, enqueue=enqueue, bmcs=clients)

    def leading() -> bool:
        return election is None or election.is_leader

    pki_maintenance = PkiMaintenance(layout.root, is_leader=leading)
    unit_certificates = UnitCertificates(acting, clients, layout.pki, is_leader=leading)
    runtime = Runtime(
        registry,
        store,
        resync_seconds=config.rack.resync_seconds,
        resync_rate=config.rack.resync_rate,
        observer=metrics,
    )
    if election is not None:
        metrics.watch_leader(lambda: election.is_leader)
    servers: list[AppServer] = []
    bulk: BulkTargetServer | None = None
    try:
        await declare(store, config)
        api_app = create_api_app(
            store,
            token=config.api.token,
            metrics=metrics,
            enqueue=runtime.enqueue,
            rack_name=config.rack.name,
            audit=audit,
        )
        machine_app = create_machine_app(
            heartbeats,
            enqueue=runtime.enqueue,
            boot_app=_boot_app(layout.boot / "repo"),  # type: ignore[arg-type]
            store=acting,
        )
        cert, key = tls_dir / "server.crt", tls_dir / "server.key"
        if not (layout.pki / CRL_NAME).exists():
            # The CA's holder keeps a CRL; an empty one until something is revoked.
            await asyncio.to_thread(write_crl, RackCA.load(layout.pki), layout.pki)
        servers.append(
            AppServer(
                api_app,
                port=config.controller.api_port,
                ssl_context=server_context(cert, key),
                name="api",
            )
        )
        servers.append(
            AppServer(
                machine_app,
                port=config.controller.machine_port,
                # Mutual TLS, and a revoked unit certificate fails the handshake.
                ssl_context=server_context_with_crl(
                    cert, key, ca=layout.ca_cert, crl=layout.pki / CRL_NAME
                ),
                name="machine",
            )
        )
        for port in (config.controller.api_port, config.controller.machine_port):
            _check_port(port)
        if election is None:
            await runtime.start()
            await gitops.start_watching(runtime.enqueue)
        else:
            await election.start()
        await refresher.start()
        await pki_maintenance.start()
        await unit_certificates.start()
        for server in servers:
            await server.start()
        bulk = _bulk_server(config)
        if bulk is not None:
            await bulk.start()
        log.info(
            "controller of %s up: API on %d, machines on %d",
            config.rack.name,
            config.controller.api_port,
            config.controller.machine_port,
        )
        await stop.wait()
        log.info("stopping")
    finally:
        await unit_certificates.stop()
        await pki_maintenance.stop()
        await refresher.stop()
        if bulk is not None:
            await bulk.stop()
        for server in reversed(servers):
            await server.stop()
        if election is not None:
            await election.stop()
        await gitops.stop_watching()
        await runtime.stop()
        for client in clients.values():
            await client.aclose()
        await store.close()
        await audit.aclose()


async def _main(state_dir: Path) -> None:
    config = rack_config.load(state_dir / rack_config.CONFIG_NAME)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    own_dir = not await asyncio.to_thread(os.path.samefile, state_dir, config.layout.root)
    await run(config, stop, audit_dir=state_dir if own_dir else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m racklet.controller")
    parser.add_argument("--state-dir", required=True, type=Path, help="the rack's state dir")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure(args.log_level)
    try:
        run_loop(_main(args.state_dir))
    except (RackletError, OSError) as exc:
        print(f"racklet controller: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # uvicorn exits when a listener fails to start
        if exc.code in (0, None):
            return 0
        print("racklet controller: a listener failed to start (see above)", file=sys.stderr)
        return 1
    return 0


def _check_port(port: int) -> None:
    """Fail with a clear message before uvicorn would, if the port is taken."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise OSError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from exc
