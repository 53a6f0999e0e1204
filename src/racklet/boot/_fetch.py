"""Network and disk for the bootstrap client: bounded downloads and atomic installation.

Everything here measures; nothing here decides trust (that is ``_manifest``). Bodies are read
raw (no content decoding, so no decompression bombs) and never beyond their limit: a payload
is abandoned as soon as it exceeds the length its signed manifest states.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

import httpx

from racklet.boot._manifest import (
    PAYLOAD_NAME,
    AgentConfig,
    Manifest,
    check_payload_digest,
    parse_agent_config,
)
from racklet.boot._types import BootLimits
from racklet.boot.errors import FetchError, PayloadError, VerificationError

AGENT_CONFIG = "agent.json"
MANIFEST_NAME = "manifest.json"
PARTIAL_SUFFIX = ".partial"
_HEADERS = {"Accept-Encoding": "identity"}


def _check_status(response: httpx.Response, what: str) -> None:
    if response.status_code != 200:
        raise FetchError(f"boot server answered HTTP {response.status_code} for {what}")


def _declared_length(response: httpx.Response, what: str) -> int | None:
    value = response.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise FetchError(f"boot server sent an invalid Content-Length for {what}") from None


async def get_small(
    client: httpx.AsyncClient,
    url: str,
    *,
    what: str,
    limit: int,
    too_big: type[VerificationError],
) -> bytes:
    """GET a small document, refusing it as soon as it grows past ``limit`` bytes."""
    try:
        async with client.stream("GET", url, headers=_HEADERS) as response:
            _check_status(response, what)
            declared = _declared_length(response, what)
            if declared is not None and declared > limit:
                raise too_big(f"{what} of {declared} bytes exceeds the {limit}-byte limit")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > limit:
                    raise too_big(f"{what} exceeds the {limit}-byte limit")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise FetchError(f"cannot fetch {what} from {url}: {_describe(exc)}") from exc


def clean_partials(boot_dir: Path) -> None:
    """Remove downloads a power cut interrupted."""
    for stale in boot_dir.glob(f".{PAYLOAD_NAME}.*{PARTIAL_SUFFIX}"):
        stale.unlink(missing_ok=True)


async def download_payload(
    client: httpx.AsyncClient,
    url: str,
    manifest: Manifest,
    boot_dir: Path,
    limits: BootLimits,
) -> tuple[Path, AgentConfig]:
    """Stream the payload into a temp file in ``boot_dir``, verify it, read its agent config.

    Returns the verified temp file; the caller installs it. On any failure the temp file is
    removed and nothing in ``boot_dir`` changes.
    """
    expected = manifest.payload_length
    await asyncio.to_thread(boot_dir.mkdir, parents=True, exist_ok=True)
    fd, name = await asyncio.to_thread(
        tempfile.mkstemp, dir=boot_dir, prefix=f".{PAYLOAD_NAME}.", suffix=PARTIAL_SUFFIX
    )
    path = Path(name)
    handle = os.fdopen(fd, "wb")
    hasher = hashlib.sha256()
    received = 0
    try:
        try:
            async with client.stream("GET", url, headers=_HEADERS) as response:
                _check_status(response, "the payload")
                declared = _declared_length(response, "the payload")
                if declared is not None and declared != expected:
                    raise PayloadError(
                        f"boot server announces a payload of {declared} bytes, "
                        f"the signed manifest says {expected}; not downloading it"
                    )
                buffer = bytearray()
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    if received > expected:
                        raise PayloadError(
                            f"payload is longer than the {expected} bytes the signed manifest "
                            "says; download stopped"
                        )
                    buffer += chunk
                    if len(buffer) >= limits.chunk_bytes:
                        data, buffer = buffer, bytearray()
                        await asyncio.to_thread(_write_and_hash, handle, hasher, data)
                await asyncio.to_thread(_write_and_hash, handle, hasher, buffer)
        except httpx.HTTPError as exc:
            raise FetchError(f"cannot fetch the payload from {url}: {_describe(exc)}") from exc
        await asyncio.to_thread(_sync_close, handle)
        check_payload_digest(manifest, received, hasher.hexdigest())
        agent = await asyncio.to_thread(read_agent_config, path, limits.max_agent_config_bytes)
    except BaseException:
        _discard(handle, path)  # synchronous on purpose: it must finish even when cancelled
        raise
    return path, agent


def _discard(handle: BinaryIO, path: Path) -> None:
    handle.close()
    path.unlink(missing_ok=True)


def _write_and_hash(handle: BinaryIO, hasher: hashlib._Hash, data: bytes | bytearray) -> None:
    if data:
        hasher.update(data)
        handle.write(data)


def _sync_close(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def read_agent_config(payload: Path, limit: int) -> AgentConfig:
    """Find ``agent.json`` in a verified payload (a tar archive) and parse it."""
    try:
        with tarfile.open(payload, "r:") as archive:
            for member in archive:
                if member.name.removeprefix("./") != AGENT_CONFIG:
                    continue
                if not member.isfile() or member.size > limit:
                    raise PayloadError(f"{AGENT_CONFIG} in the payload is not a file of ≤{limit} B")
                stream = archive.extractfile(member)
                if stream is None:
                    break
                return parse_agent_config(stream.read())
    except (tarfile.TarError, OSError) as exc:
        raise PayloadError(f"payload is not a readable tar archive: {exc}") from exc
    raise PayloadError(f"payload has no {AGENT_CONFIG}")


def install(boot_dir: Path, verified: Path, manifest_bytes: bytes) -> None:
    """Make a verified payload the bootable one: payload, then its manifest, each atomic."""
    os.replace(verified, boot_dir / PAYLOAD_NAME)
    fd, tmp = tempfile.mkstemp(dir=boot_dir, prefix=f".{MANIFEST_NAME}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(manifest_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, boot_dir / MANIFEST_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(boot_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
