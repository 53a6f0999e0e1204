"""The bootstrap client: what a unit runs from its boot ROM / initramfs.

It asks its BMC for the trust bundle (the TUF root among it) and its identity over the
backplane link, then lets python-tuf's ngclient refresh the metadata from the boot server over
mutual TLS (cached in the unit's storage, which is what makes rollbacks detectable), resolve the
channel's ``current.json`` and download the payload, verified against its signed length and
hashes. It installs the payload atomically and boots it. Any
failure is printed on the console, sent to the BMC as ``failed`` and raised as a
:class:`~racklet.boot.errors.BootError`; an unverified payload is never installed or booted, and
a previously installed, verified payload stays in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from racklet.boot._identity import unit_client_context
from racklet.boot._install import install, read_agent_config
from racklet.boot._tuf_client import FetchedRelease, clean_partials, fetch_release
from racklet.boot._tuf_fetch import HttpxFetcher
from racklet.boot._types import BootedPayload, BootLimits, TrustBundle, UnitIdentity
from racklet.boot.errors import BootError, TrustError
from racklet.hw import Activity, UnitHost
from racklet.link import LinkClient, LinkError
from racklet.log import ContextLogger, get_logger

__all__ = ["BOOT_PATH", "bootstrap"]

BOOT_PATH = "/boot/v1"
METADATA_CACHE = Path("tuf") / "metadata"
_DEFAULT_LIMITS = BootLimits()


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


async def bootstrap(host: UnitHost, *, limits: BootLimits = _DEFAULT_LIMITS) -> BootedPayload:
    """Fetch, verify, install and boot the unit's payload; raise ``BootError`` on failure."""
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
        booted = await _boot(host, link, limits, logger)
    except BootError as exc:
        await _report_failure(host, link, exc, logger)
        raise
    finally:
        if link is not None:
            await link.close()
    return booted


async def _boot(
    host: UnitHost, link: _BmcLink, limits: BootLimits, logger: ContextLogger
) -> BootedPayload:
    try:
        await link.request(
            "progress", state="SystemHardwareInitializationComplete", message="bootstrap started"
        )
        trust = TrustBundle.from_link(await link.request("trust"))
        identity = UnitIdentity.from_link(await link.request("identity"))
    except LinkError as exc:
        raise TrustError(f"backplane link: {exc}") from exc
    logger = logger.bind(unit=identity.name)
    host.console(f"bootstrap: unit {identity.name}, boot server {trust.boot_server}")
    ssl_context = await asyncio.to_thread(unit_client_context, trust, identity)
    boot_dir = host.storage / "boot"
    fetched = await _fetch(host, trust, ssl_context, boot_dir, limits)
    manifest = fetched.manifest
    host.console(
        f"bootstrap: TUF verified {manifest.name} {manifest.version} ({manifest.channel}), "
        f"{manifest.payload_length} bytes, SHA-256 {manifest.payload_sha256}"
    )
    try:
        agent = await asyncio.to_thread(
            read_agent_config, fetched.payload, limits.max_agent_config_bytes
        )
        await asyncio.to_thread(install, boot_dir, fetched.payload, manifest.to_json())
    except BaseException:
        await asyncio.to_thread(fetched.payload.unlink, missing_ok=True)
        raise
    logger.info(f"installed {manifest.name} {manifest.version}")
    host.set_activity(Activity.BOOTING)
    with contextlib.suppress(LinkError):
        await link.request(
            "progress", state="OSBootStarted", message=f"{manifest.name} {manifest.version}"
        )
    host.console(f"bootstrap: booting {manifest.name} {manifest.version}")
    return BootedPayload(
        unit=identity.name, manifest=manifest, agent=agent, identity=identity, trust=trust
    )


async def _fetch(
    host: UnitHost,
    trust: TrustBundle,
    ssl_context: ssl.SSLContext,
    boot_dir: Path,
    limits: BootLimits,
) -> FetchedRelease:
    """Run ngclient in a worker thread, bounded by the boot deadline; a cancelled boot (power
    cut) stops the thread at its next chunk."""
    cancel = threading.Event()
    fetcher = HttpxFetcher(
        ssl_context=ssl_context,
        connect_timeout=limits.connect_timeout,
        read_timeout=limits.read_timeout,
        deadline=time.monotonic() + limits.total_timeout,
        cancel=cancel,
    )

    def run() -> FetchedRelease:
        try:
            clean_partials(boot_dir)
            return fetch_release(
                root=trust.tuf_root,
                metadata_dir=host.storage / METADATA_CACHE,
                base_url=f"{trust.boot_server}{BOOT_PATH}",
                channel=trust.channel,
                download_dir=boot_dir,
                fetcher=fetcher,
                limits=limits,
            )
        finally:
            fetcher.close()  # in the worker thread, after its last request

    try:
        return await asyncio.to_thread(run)
    finally:
        cancel.set()


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
