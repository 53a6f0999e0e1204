"""The bootstrap client: what a unit runs from its boot ROM / initramfs.

It asks its BMC for the trust bundle and its identity over the backplane link, fetches the
signed manifest and the payload from the boot server over mutual TLS, has the kernel
(``racklet.boot._manifest``) verify them, installs the payload atomically and boots it. Any
failure is printed on the console, sent to the BMC as ``failed`` and raised as a
:class:`~racklet.boot.errors.BootError`; an unverified payload is never installed or booted, and
a previously installed, verified payload stays in place.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from racklet.boot._fetch import MANIFEST_NAME, clean_partials, download_payload, get_small, install
from racklet.boot._identity import unit_client_context
from racklet.boot._manifest import PAYLOAD_NAME, verify_manifest
from racklet.boot._publish import SIGNATURE_NAME
from racklet.boot._types import BootedPayload, BootLimits, TrustBundle, UnitIdentity
from racklet.boot.errors import (
    BootError,
    FetchError,
    ManifestError,
    SignatureError,
    TrustError,
)
from racklet.hw import Activity, UnitHost
from racklet.link import LinkClient, LinkError
from racklet.log import ContextLogger, get_logger

__all__ = ["BOOT_PATH", "bootstrap"]

BOOT_PATH = "/boot/v1"
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
    base = f"{trust.boot_server}{BOOT_PATH}"
    boot_dir = host.storage / "boot"
    timeout = httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout)
    try:
        async with (
            asyncio.timeout(limits.total_timeout),
            httpx.AsyncClient(verify=ssl_context, timeout=timeout) as client,
        ):
            manifest_bytes = await get_small(
                client,
                f"{base}/{MANIFEST_NAME}",
                what="the manifest",
                limit=limits.max_manifest_bytes,
                too_big=ManifestError,
            )
            signature = await get_small(
                client,
                f"{base}/{SIGNATURE_NAME}",
                what="the manifest signature",
                limit=limits.max_signature_bytes,
                too_big=SignatureError,
            )
            manifest = verify_manifest(
                manifest_bytes,
                signature,
                trust.signing_key_pem,
                max_payload_bytes=limits.max_payload_bytes,
            )
            host.console(
                f"bootstrap: manifest verified: {manifest.name} {manifest.version}, "
                f"{manifest.payload_length} bytes"
            )
            await asyncio.to_thread(boot_dir.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(clean_partials, boot_dir)
            verified, agent = await download_payload(
                client, f"{base}/{PAYLOAD_NAME}", manifest, boot_dir, limits
            )
    except TimeoutError as exc:
        raise FetchError(f"boot did not finish within {limits.total_timeout:g} s") from exc
    except OSError as exc:
        raise BootError(f"unit storage failed during the download: {exc}") from exc
    host.console(f"bootstrap: payload SHA-256 verified: {manifest.payload_sha256}")
    try:
        await asyncio.to_thread(install, boot_dir, verified, manifest_bytes)
    except OSError as exc:
        await asyncio.to_thread(verified.unlink, missing_ok=True)
        raise BootError(f"cannot install the payload in {boot_dir}: {exc}") from exc
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
