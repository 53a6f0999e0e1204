"""The unit's OS, as far as the rack sees it: boot, run the agent, halt on request.

It comes up after the payload's boot time (simulated seconds), reports ``OSRunning`` to the
BMC, serves ``/metrics`` over HTTPS with the unit identity and heartbeats to the controller.
It halts when the BMC pulses the shutdown-request line; a power cut cancels it. On a
try-boot it also runs the health check (``_health``): commit the slot, or reboot to fall back.
Given the rack's CRL file, the agent's listener follows it (``unit_live_server_context``): a
revoked controller certificate stops reading VM consoles without restarting the OS.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from pathlib import Path

from racklet.boot import (
    BootedPayload,
    controller_identity,
    fetch_verified_target,
    unit_client_context,
    unit_live_server_context,
    unit_server_context,
)
from racklet.errors import RackletError
from racklet.hw import Activity, UnitHost
from racklet.link import LinkClient, LinkError
from racklet.log import ContextLogger, get_logger
from racklet.net import AppServer
from racklet.node._console import console_route
from racklet.node._health import TrialCheck, link_request
from racklet.node._heartbeat import HeartbeatSender, beat_now_route
from racklet.node._hypervisor import Hypervisor
from racklet.node._metrics import NodeMetrics, create_agent_app, metrics_registry
from racklet.node._p2p import PeerServer
from racklet.node._stress import StressRunner
from racklet.node._workloads import ImageStore, Workloads
from racklet.node.errors import AgentServerError
from racklet.vm._image import MAX_IMAGE_BYTES

SHUTDOWN_POLL_SECONDS = 0.25
LINK_TIMEOUT_SECONDS = 10.0  # wall clock: a hung BMC must not keep the OS from coming up


class _Console:
    """Console lines stamped like a kernel log: simulated seconds since the OS started."""

    def __init__(self, host: UnitHost, started: float) -> None:
        self._host = host
        self._started = started

    def __call__(self, text: str) -> None:
        elapsed = self._host.clock.monotonic() - self._started
        self._host.console(f"[{elapsed:12.6f}] {text}")


async def run_os(host: UnitHost, booted: BootedPayload, *, crl: Path | None = None) -> None:
    """Run the booted OS until the BMC requests a shutdown (returns) or power is cut
    (``CancelledError`` propagates after everything is stopped). ``crl``: the rack CA's CRL,
    which the agent's listener follows (without it, revocation reaches it only at expiry)."""
    logger = get_logger("node", unit=booted.unit)
    started = host.clock.monotonic()
    console = _Console(host, started)
    name, version = booted.manifest.name, booted.manifest.version
    console(f"Booting {name} {version} on {booted.unit}")
    await host.clock.sleep(booted.agent.os_boot_seconds)
    host.set_activity(Activity.RUNNING)
    console(f"{name} {version}: reached target multi-user")
    logger.info(f"os timeline: up={time.time():.6f}")  # wall clock, beside the boot timeline
    await _report_running(host, booted, logger)

    metrics = NodeMetrics(host, booted.unit, version, started)
    server: AppServer | None = None
    heartbeat_task: asyncio.Task[None] | None = None
    stress = StressRunner(host, logger, console)
    workloads: Workloads | None = None
    peers = PeerServer(host.storage, booted, crl)
    tls_files = contextlib.ExitStack()  # the listener's PEMs, while it follows the CRL
    try:
        client_ssl = await asyncio.to_thread(unit_client_context, booted.trust, booted.identity)
        workloads = await _workloads(host, booted, client_ssl)
        metrics.vms = workloads.reports
        try:
            server = await _start_agent(host, booted, metrics, workloads, crl, tls_files)
            console(f"racklet-agent: serving https://127.0.0.1:{host.agent_port}/metrics")
        except AgentServerError as exc:
            console(f"racklet-agent: {exc}")
            logger.error(str(exc))
        peer_url = await _start_peer_server(host, booted, crl, peers, console, logger)
        heartbeat = HeartbeatSender(
            host, booted, metrics, client_ssl, logger, stress, workloads, peer_url=peer_url
        )
        heartbeat_task = asyncio.create_task(heartbeat.run(), name=f"heartbeat:{booted.unit}")
        console(f"racklet-agent: heartbeat to {heartbeat.url}")
        trial = TrialCheck(host, booted, booted.trial, started) if booted.trial else None
        seen_healthy = False
        while not host.shutdown_requested():
            if heartbeat_task.done():
                await heartbeat_task  # surfaces a bug; it never ends on its own
            if trial is not None and trial.verdict is None:
                healthy = server is not None and metrics.heartbeats["ok"] > 0
                if healthy and not seen_healthy:
                    seen_healthy = True  # the first heartbeat the controller accepted
                    logger.info(f"os timeline: healthy={time.time():.6f}")
                verdict = await trial.check(healthy, logger)
                if verdict is not None and verdict.committed:
                    logger.info(f"os timeline: committed={time.time():.6f}")
                    console(f"racklet-agent: health check passed; slot {booted.slot} committed")
                elif verdict is not None:
                    console(f"racklet-agent: {verdict.reason}; rebooting to the committed slot")
                    if not await _restart(host, verdict.reason, logger):
                        break
            await workloads.expire()
            await host.clock.sleep(SHUTDOWN_POLL_SECONDS)
        else:
            console("racklet-os: shutdown requested; stopping services")
    finally:
        if heartbeat_task is not None:
            heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat_task
        await stress.stop()
        if workloads is not None:
            await workloads.close()  # a power cut or a halt kills every VM of the unit
        if server is not None:
            await server.stop()
        await peers.stop()
        await asyncio.to_thread(tls_files.close)
    console("reboot: System halted")
    logger.info("halted")
    host.set_activity(Activity.HALTED)


async def _start_peer_server(
    host: UnitHost,
    booted: BootedPayload,
    crl: Path | None,
    peers: PeerServer,
    console: _Console,
    logger: ContextLogger,
) -> str | None:
    """Serve the booted payload to the rack's other units; None (and why, on the console) if
    it cannot: the unit still runs, its peers download from the bulk server."""
    try:
        url = await peers.start()
    except (OSError, RackletError) as exc:
        reason = " ".join(str(exc).split())
        console(f"racklet-agent: not serving its payload to peers: {reason}")
        logger.warning(f"not serving its payload to peers: {reason}")
        return None
    console(f"racklet-agent: serving its payload to the rack's units at {url}")
    return url


async def _workloads(
    host: UnitHost, booted: BootedPayload, client_ssl: ssl.SSLContext
) -> Workloads:
    """The unit's MicroVMs: images come TUF-verified from the rack's boot server, with the
    BMC-held root, into a metadata cache of their own on the unit's storage, where each
    VM's kernel and initrd are laid out too (``vms/``: a QEMU's command line names its
    unit)."""
    metadata = host.storage / "tuf-vm" / "metadata"
    images = ImageStore(host.storage / "vm-images")
    logger = get_logger("node", unit=booted.unit)

    def fetch_and_keep(target: str) -> bytes:
        started, found = time.monotonic(), []

        def held(sha256: str) -> bytes | None:
            data = images.held(sha256)
            if data is not None:
                found.append(data)
            return data

        data = fetch_verified_target(
            booted.trust,
            client_ssl,
            target,
            metadata,
            max_bytes=MAX_IMAGE_BYTES,
            held=held,
        )
        how = "held ahead of time" if found and data is found[-1] else "downloaded"
        logger.info(f"image {target} verified in {time.monotonic() - started:.3f} s ({how})")
        try:
            images.keep(data)
        except OSError as exc:  # a full card: the VM still starts, the next fetch downloads
            logger.warning(f"verified image {target} not kept: {exc}")
        return data

    async def fetch(target: str) -> bytes:
        return await asyncio.to_thread(fetch_and_keep, target)

    # The twin's unit takes its VMs' CPU share as its load (its power curve follows); a real
    # unit's load is simply measured, so there is nothing to set.
    cores, _ = host.capacity()
    hypervisor = Hypervisor(host.storage / "vms")
    await hypervisor.prepare()
    return Workloads(
        hypervisor,
        fetch,
        cores=cores,
        on_load=getattr(host, "set_load", None),
        base_load=host.cpu_load,
    )


async def _restart(host: UnitHost, reason: str, logger: ContextLogger) -> bool:
    """Ask the BMC to reset the unit (a power cut ends this task); False if it cannot."""
    try:
        await link_request(host, "restart", reason=reason)
    except LinkError as exc:
        logger.error(f"cannot ask the BMC for a restart, halting instead: {exc}")
        return False
    return True


def _check_port_free(port: int) -> None:
    """Fail early on a taken port: uvicorn answers a bind error with ``sys.exit``, which
    escapes ``AppServer.start`` through the event loop instead of raising there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


async def _start_agent(
    host: UnitHost,
    booted: BootedPayload,
    metrics: NodeMetrics,
    workloads: Workloads,
    crl: Path | None,
    tls_files: contextlib.ExitStack,
) -> AppServer:
    try:
        _check_port_free(host.agent_port)
        if crl is None:
            ssl_context = await asyncio.to_thread(
                unit_server_context, booted.identity, booted.trust
            )
        else:
            live = unit_live_server_context(booted.identity, booted.trust, crl)
            ssl_context = await asyncio.to_thread(tls_files.enter_context, live)
        controller = controller_identity(booted.identity)
        consoles = console_route(workloads.console_state, controller)
        beat_now = beat_now_route(workloads.report_due, controller)
        server = AppServer(
            create_agent_app(metrics_registry(metrics), [consoles, beat_now]),
            port=host.agent_port,
            ssl_context=ssl_context,
            name=f"agent:{booted.unit}",
        )
        await server.start()
    except (OSError, RackletError, SystemExit) as exc:  # uvicorn exits on a bind error
        raise AgentServerError(
            f"cannot listen on 127.0.0.1:{host.agent_port}: {' '.join(str(exc).split())}"
        ) from exc
    return server


async def _report_running(host: UnitHost, booted: BootedPayload, logger: ContextLogger) -> None:
    """Tell the BMC the OS is up (Redfish BootProgress ``OSRunning``); never fatal."""
    try:
        reader, writer = await host.link.connect()
    except OSError as exc:
        logger.warning(f"cannot open the backplane link: {exc}")
        return
    link = LinkClient(reader, writer)
    try:
        async with asyncio.timeout(LINK_TIMEOUT_SECONDS):
            await link.request(
                "progress",
                state="OSRunning",
                message=f"{booted.manifest.name} {booted.manifest.version}",
            )
    except (LinkError, TimeoutError) as exc:
        logger.warning(f"cannot report OSRunning: {exc or 'the BMC did not answer'}")
    finally:
        await link.close()
