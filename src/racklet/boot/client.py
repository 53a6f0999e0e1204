"""The bootstrap client: what a unit runs from its boot ROM / initramfs.

It asks its BMC for the trust bundle (the TUF root among it), its identity and its A/B state
over the backplane link. Reading the A/B state consumes the one-shot try-boot flag, so the
BMC, not the unit's disk, decides what this boot is:

- a **try-boot**: boot the freshly written slot once; the OS agent commits it after its
  health check (``racklet.node``), or the next boot falls back by itself;
- otherwise python-tuf's ngclient refreshes the metadata over mutual TLS (cached in the
  unit's storage, which is what makes metadata rollbacks detectable) and reads the channel's
  ``current.json``. A release newer than the committed slot is downloaded into the *other*
  slot (verified against its signed length and hashes), the try-boot flag is set on the BMC
  and the unit reboots into it; the first install goes to slot A and is committed at once.
  Otherwise the committed slot is booted after its SHA-256 is checked against the BMC's record.

With the rack's peer-to-peer distribution on, the download takes its pieces from the units
that already run the release (``_p2p``), each connection pinned to that unit's identity;
the slot's file is checked whole against TUF either way before it gets a name.

The payload is hashed once, as it streams into the slot; the warm reboot into that slot, in
the same power-on, does not read it again unless the file changed since (``_slots.Stamp``).
Every cold boot re-hashes the slot it boots.

Each pass logs one ``boot timeline:`` line, its steps (start, refreshed, downloaded,
installed, armed; verified on the pass that boots) with their wall-clock times, so a boot's
time can be laid beside the controller's records (``bench rack_boot`` breaks a rack's update
down by them).

A release below the BMC's rollback counter is refused (``RollbackError``). Any failure is
printed on the console, sent to the BMC as ``failed`` and raised as a
:class:`~racklet.boot.errors.BootError`; an unverified payload is never installed or booted,
and the committed slot is never written.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from racklet.boot._ab import AbView, SlotRef
from racklet.boot._identity import unit_client_context, unit_peer_client_context
from racklet.boot._install import read_agent_config
from racklet.boot._manifest import PAYLOAD_NAME, PayloadManifest, ReleasePointer
from racklet.boot._p2p import Peer, RangeFetcher
from racklet.boot._slots import (
    SLOTS_DIR,
    Stamp,
    clean_partials,
    install_slot,
    open_for_write,
    other,
    slot_dir,
    stamp,
    verify_slot,
)
from racklet.boot._stream_fetch import StreamFetcher
from racklet.boot._tuf_api import FetcherInterface
from racklet.boot._tuf_client import FetchedRelease, PeerAccess, open_channel
from racklet.boot._types import BootedPayload, BootLimits, TrialBoot, TrustBundle, UnitIdentity
from racklet.boot.errors import BootError, FetchError, PayloadError, RollbackError, TrustError
from racklet.hw import Activity, UnitHost
from racklet.link import LinkClient, LinkError
from racklet.log import ContextLogger, get_logger

__all__ = ["BOOT_PATH", "bootstrap"]

BOOT_PATH = "/boot/v1"
METADATA_CACHE = Path("tuf") / "metadata"
_DEFAULT_LIMITS = BootLimits()
_T = TypeVar("_T")


class _BmcLink:
    """The link client with a deadline on every answer: a hung BMC fails the boot."""

    def __init__(self, client: LinkClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._client.request(op, **fields)
        except TimeoutError as exc:
            raise LinkError(f"the BMC did not answer {op!r} within {self._timeout:g} s") from exc

    async def close(self) -> None:
        await self._client.close()


async def bootstrap(
    host: UnitHost,
    *,
    limits: BootLimits = _DEFAULT_LIMITS,
    transport: FetcherInterface | None = None,
) -> BootedPayload:
    """Boot the unit's committed or trial slot, updating the other slot first if the channel
    has a newer release; raise ``BootError`` on failure.

    ``transport`` replaces the mutual-TLS HTTPS fetcher (an in-process repository in tests).
    """
    logger = get_logger("bootstrap")
    host.set_activity(Activity.FIRMWARE)
    host.console("bootstrap: racklet bootstrap starting")
    link: _BmcLink | None = None
    try:
        try:
            reader, writer = await host.link.connect()
        except (OSError, LinkError) as exc:
            raise TrustError(f"cannot open the backplane link: {exc}") from exc
        link = _BmcLink(LinkClient(reader, writer), limits.link_timeout)
        booted = await _boot(host, link, limits, logger, transport)
    except BootError as exc:
        await _report_failure(host, link, exc, logger)
        raise
    finally:
        if link is not None:
            await link.close()
    return booted


IDENTITY_RETRY_MAX_SECONDS = 10.0


async def _await_identity(host: UnitHost, link: _BmcLink) -> UnitIdentity:
    """The unit's identity from its BMC, waiting for as long as it takes.

    A new unit's key is made by its BMC and certified by the controller through Redfish
    CertificateService, which may happen after power-on (the controller starts later, or
    leadership is changing hands): a first boot waits for it, as netboot firmware waits for
    its server, instead of failing for good. Power-off cancels the wait.
    """
    delay = 0.5
    while True:
        try:
            return UnitIdentity.from_link(await link.request("identity"))
        except LinkError as exc:
            host.console(f"bootstrap: no identity yet, asking again in {delay:g} s: {exc}")
            await host.clock.sleep(delay)
            delay = min(delay * 2, IDENTITY_RETRY_MAX_SECONDS)


async def _boot(
    host: UnitHost,
    link: _BmcLink,
    limits: BootLimits,
    logger: ContextLogger,
    transport: FetcherInterface | None,
) -> BootedPayload:
    try:
        await link.request(
            "progress", state="SystemHardwareInitializationComplete", message="bootstrap started"
        )
        trust = TrustBundle.from_link(await link.request("trust"))
    except LinkError as exc:
        raise TrustError(f"backplane link: {exc}") from exc
    identity = await _await_identity(host, link)
    host.console(f"bootstrap: unit {identity.name}, boot server {trust.boot_server}")
    ssl_context = await asyncio.to_thread(unit_client_context, trust, identity)
    boot = _Boot(
        host, link, limits, logger.bind(unit=identity.name), trust, identity, ssl_context, transport
    )
    for _ in range(2):  # the second pass is the warm reboot into the freshly written slot
        booted = await boot.once()
        if booted is not None:
            return booted
    raise BootError("the try-boot flag set for the new slot was not seen on the reboot")


@dataclass(frozen=True)
class _ChannelResult:
    """What following the channel found: its pointer, and the payload if one was written, or
    else the committed slot's release if it verified (or why it did not)."""

    pointer: ReleasePointer
    target_slot: str
    fetched: FetchedRelease | None
    committed: PayloadManifest | None = None
    problem: str | None = None


class _Boot:
    """One power-on of a unit, pass by pass (a pass ends in a boot or a warm reboot)."""

    def __init__(
        self,
        host: UnitHost,
        link: _BmcLink,
        limits: BootLimits,
        logger: ContextLogger,
        trust: TrustBundle,
        identity: UnitIdentity,
        ssl_context: ssl.SSLContext,
        transport: FetcherInterface | None,
    ) -> None:
        self.host, self.link, self.limits, self.logger = host, link, limits, logger
        self.trust, self.identity, self.ssl_context = trust, identity, ssl_context
        self.transport = transport
        self.written: dict[str, Stamp] = {}
        """Slots this power-on wrote from bytes it verified while they streamed in."""
        self.dropped_peers: list[tuple[str, str]] = []
        """Peers a download of this power-on dropped (``PeerAccess.dropped``)."""
        self.marks: list[tuple[str, float]] = []
        """This pass's steps and when each ended (wall-clock, so the controller's and a
        benchmark's records line up with them): logged as one ``boot timeline`` line."""

    def mark(self, step: str) -> None:
        """Record the end of ``step`` (thread-safe: the download thread marks too)."""
        self.marks.append((step, time.time()))

    def log_timeline(self) -> None:
        """One line per pass, ``step=unix-time`` pairs in order: where a boot spends its time."""
        if self.marks:
            steps = " ".join(f"{step}={at:.6f}" for step, at in self.marks)
            self.logger.info(f"boot timeline: {steps}")
            self.marks = []

    async def _ask(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            return await self.link.request(op, **fields)
        except LinkError as exc:
            raise TrustError(f"backplane link: {exc}") from exc

    async def once(self) -> BootedPayload | None:
        """Boot, or return None after arming a try-boot (the caller reboots)."""
        self.mark("start")
        try:
            ab = AbView.from_link(await self._ask("ab", consume=True))
            if ab.mode == "try" and ab.trying is not None:
                return await self._try(ab, ab.trying)
            return await self._follow_channel(ab)
        finally:
            self.log_timeline()

    async def _try(self, ab: AbView, trying: SlotRef) -> BootedPayload:
        host = self.host
        try:
            manifest = await asyncio.to_thread(
                verify_slot, host.storage, trying.slot, trying.sha256, self.written.get(trying.slot)
            )
        except PayloadError as exc:
            host.console(f"bootstrap: try-boot of slot {trying.slot} abandoned: {exc}")
            if ab.committed is None:
                raise
            return await self._boot_committed(ab.committed)
        if ab.below_floor(manifest.version):
            raise RollbackError(
                f"refusing {manifest.name} {manifest.version} in slot {trying.slot}: below "
                f"the committed version {ab.rollback_version} (rollback protection)"
            )
        host.console(f"bootstrap: try-boot of slot {trying.slot} ({manifest.version}), once")
        trial = TrialBoot(trying.slot, self.limits.health_deadline_seconds)
        return await self._start(manifest, trying.slot, trial)

    async def _follow_channel(self, ab: AbView) -> BootedPayload | None:
        host, committed = self.host, ab.committed
        target = other(committed.slot if committed is not None else None)
        storage = host.storage
        notes: list[str] = []  # what the download had to work around, for the console

        def work(fetcher: FetcherInterface) -> _ChannelResult:
            channel = open_channel(
                root=self.trust.tuf_root,
                metadata_dir=storage / METADATA_CACHE,
                base_url=f"{self.trust.boot_server}{BOOT_PATH}",
                target_base_url=self.trust.targets_url,
                channel=self.trust.channel,
                scratch_dir=storage / SLOTS_DIR,
                fetcher=fetcher,
                limits=self.limits,
                notes=notes,
                p2p=self._peer_access(fetcher),
            )
            self.mark("refreshed")
            pointer, problem = channel.pointer, None
            if ab.below_floor(pointer.version):
                return _ChannelResult(pointer, target, None)
            if committed is not None and not ab.wants(pointer.version):
                # the committed slot is hashed only when it is what this boot will run
                try:
                    manifest = verify_slot(storage, committed.slot, committed.sha256)
                    return _ChannelResult(pointer, target, None, committed=manifest)
                except PayloadError as exc:
                    problem = str(exc)  # reinstall the channel's release
            directory = open_for_write(storage, target)
            clean_partials(directory)
            fetched = channel.download(directory)
            self.mark("downloaded")
            return _ChannelResult(pointer, target, fetched, problem=problem)

        try:
            result = await self._run(work)
        except FetchError as exc:
            for note in notes:
                host.console(f"bootstrap: {note}")
            if committed is None:
                raise
            manifest = await self._verified(committed)
            if manifest is None:
                raise
            host.console(f"bootstrap: boot server unreachable; booting the committed slot: {exc}")
            return await self._start(manifest, committed.slot, None)
        for note in notes:
            host.console(f"bootstrap: {note}")
        pointer = result.pointer
        if result.problem is not None:
            host.console(f"bootstrap: {result.problem}; reinstalling it from the channel")
        if ab.below_floor(pointer.version):
            raise RollbackError(
                f"refusing {pointer.name} {pointer.version} from channel {self.trust.channel}: "
                f"below the committed version {ab.rollback_version} (rollback protection)"
            )
        if result.fetched is None:
            assert committed is not None  # nothing fetched only when the committed slot is fine
            if pointer.version == ab.rejected_version:
                host.console(
                    f"bootstrap: {pointer.name} {pointer.version} failed its trial before; "
                    f"staying on {committed.version}"
                )
            if result.committed is not None:
                return await self._start(result.committed, committed.slot, None)
            return await self._boot_committed(committed)
        manifest = await self._install(result.fetched, result.target_slot)
        if committed is None:
            await self._ask(
                "commit", slot=target, version=manifest.version, sha256=manifest.payload_sha256
            )
            host.console(f"bootstrap: first install, slot {target} committed")
            return await self._start(manifest, target, None)
        await self._ask(
            "tryboot",
            slot=target,
            version=manifest.version,
            sha256=manifest.payload_sha256,
            deadlineSeconds=self.limits.health_deadline_seconds,
        )
        self.mark("armed")
        host.console(f"bootstrap: try-boot flag set for slot {target}; rebooting")
        return None

    def _peer_access(self, fetcher: FetcherInterface) -> PeerAccess | None:
        """Fetchers for the rack's other units, each pinned to that unit's identity and
        sharing the boot's deadline and cancel event (blocking: the download thread calls)."""
        if not isinstance(fetcher, StreamFetcher):
            return None  # an in-process transport (tests) has no peers to reach

        host = self.host

        def peer_fetcher(peer: Peer) -> RangeFetcher:
            try:
                context = unit_peer_client_context(self.trust, self.identity, peer.unit)
            except TrustError as exc:
                raise ValueError(str(exc)) from exc
            return fetcher.sibling(
                context, connect_to=lambda at, port: host.peer_address(peer.unit, at, port)
            )

        return PeerAccess(peer_fetcher, self.logger, self.dropped_peers)

    async def _verified(self, ref: SlotRef) -> PayloadManifest | None:
        """The committed slot's release if it still verifies; None (and why, on the console)
        if not."""
        try:
            return await asyncio.to_thread(verify_slot, self.host.storage, ref.slot, ref.sha256)
        except PayloadError as exc:
            self.host.console(f"bootstrap: {exc}; reinstalling it from the channel")
            return None

    async def _boot_committed(self, ref: SlotRef) -> BootedPayload:
        manifest = await asyncio.to_thread(verify_slot, self.host.storage, ref.slot, ref.sha256)
        return await self._start(manifest, ref.slot, None)

    async def _install(self, fetched: FetchedRelease, slot: str) -> PayloadManifest:
        """Check the verified payload's agent config, then make it the slot's content."""
        try:
            await asyncio.to_thread(
                read_agent_config, fetched.payload, self.limits.max_agent_config_bytes
            )
            await asyncio.to_thread(
                install_slot, self.host.storage, slot, fetched.payload, fetched.manifest
            )
            written = await asyncio.to_thread(stamp, self.host.storage, slot)
            if written is not None:
                self.written[slot] = written
            self.mark("installed")
        except BaseException:
            await asyncio.to_thread(fetched.payload.unlink, missing_ok=True)
            raise
        manifest = fetched.manifest
        self.host.console(
            f"bootstrap: TUF verified {manifest.name} {manifest.version} ({manifest.channel}), "
            f"{manifest.payload_length} bytes, SHA-256 {manifest.payload_sha256}, "
            f"written to slot {slot}"
        )
        return manifest

    async def _start(
        self, manifest: PayloadManifest, slot: str, trial: TrialBoot | None
    ) -> BootedPayload:
        payload = slot_dir(self.host.storage, slot) / PAYLOAD_NAME
        agent = await asyncio.to_thread(
            read_agent_config, payload, self.limits.max_agent_config_bytes
        )
        self.mark("verified")
        self.logger.info(f"booting {manifest.name} {manifest.version} from slot {slot}")
        self.host.set_activity(Activity.BOOTING)
        with contextlib.suppress(LinkError):
            await self.link.request(
                "progress", state="OSBootStarted", message=f"{manifest.name} {manifest.version}"
            )
        self.host.console(f"bootstrap: booting {manifest.name} {manifest.version} (slot {slot})")
        return BootedPayload(
            unit=self.identity.name,
            manifest=manifest,
            agent=agent,
            identity=self.identity,
            trust=self.trust,
            slot=slot,
            trial=trial,
            dropped_peers=tuple(self.dropped_peers),
        )

    async def _carrier(self) -> bool:
        """Wait (simulated time) for Ethernet carrier, as a real bootloader waits for link."""
        host = self.host
        if host.link_up():
            return True
        host.console("bootstrap: waiting for Ethernet link")
        waited, step = 0.0, 0.5
        while waited < self.limits.carrier_wait_seconds:
            await host.clock.sleep(step)
            waited += step
            if host.link_up():
                return True
        return False

    async def _run(self, work: Callable[[FetcherInterface], _T]) -> _T:
        """Run blocking ngclient work in this boot's own thread, bounded by the boot deadline;
        a cancelled boot (power cut) stops the thread at its next read.

        Not ``asyncio.to_thread``: its shared pool has ``cpu + 4`` workers, so five units
        downloading for seconds would leave one worker for every other blocking call in the
        process (the BMCs' state writes, the other units' slot checks) and a sixth download
        would wait for a free worker."""
        if not await self._carrier():
            raise FetchError(
                f"no Ethernet link after {self.limits.carrier_wait_seconds:g} s "
                "(is the switch port down?)"
            )
        cancel = threading.Event()
        fetcher: FetcherInterface
        if self.transport is not None:
            fetcher = self.transport
        else:
            fetcher = StreamFetcher(
                ssl_context=self.ssl_context,
                connect_timeout=self.limits.connect_timeout,
                read_timeout=self.limits.read_timeout,
                deadline=time.monotonic() + self.limits.total_timeout,
                cancel=cancel,
            )

        def run() -> _T:
            try:
                if cancel.is_set():
                    raise FetchError("the boot was cancelled before its download started")
                return work(fetcher)
            finally:
                if isinstance(fetcher, StreamFetcher):
                    fetcher.close()  # in the worker thread, after its last request

        own = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"boot-{self.identity.name}")
        try:
            return await asyncio.get_running_loop().run_in_executor(own, run)
        except asyncio.CancelledError:
            # A power cut: the thread stops at its next read, and it must be gone before the
            # next boot touches the slots (it would clean that boot's partial download away).
            cancel.set()
            await asyncio.to_thread(own.shutdown, True)
            raise
        finally:
            cancel.set()
            own.shutdown(wait=False)


async def _report_failure(
    host: UnitHost, link: _BmcLink | None, exc: BootError, logger: ContextLogger
) -> None:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    host.console(f"bootstrap: boot failed: {reason}")
    logger.warning(f"boot failed: {reason}")
    host.set_activity(Activity.HALTED)
    if link is not None:
        with contextlib.suppress(LinkError):
            await link.request("failed", reason=reason)
