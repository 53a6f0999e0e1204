"""The TUF image verifier: a pushed image is genuine only if the rack's TUF repository signed
it as a target of the ``bmc-firmware`` channel (BMC firmware) or of the channel the unit
follows (``trust.json``'s ``channel``: a unit OS payload).

The pusher sends, beside the image, the TUF metadata that vouches for it (``OemParameters``::

    {"Racklet": {"TargetPath": "bmc-firmware/<name>/<version>/<file>",
                 "TufMetadata": {"timestamp.json": {...}, "4.snapshot.json": {...}, ...}}}

as :func:`racklet.wire.firmware_oem_parameters` builds it from served metadata). The BMC
trusts none of it by itself: python-tuf's ngclient checks every role against the TUF root in
the BMC's own ``trust.json`` (``tufRoot``), with the BMC's metadata cache (``tuf-firmware/``)
bounding what it accepts next (no metadata rollback, no mix-and-match), then checks the
image's length and SHA-256 against the signed target. No network connection is opened: the
metadata comes with the push, so a BMC needs no route to the boot server to be updated.

A unit OS payload (``<channel>/<name>/<version>/payload.bin``) is checked by the bootstrap's
own code (:func:`racklet.boot.verify_held_payload`: signed target, limits, length and every
hash, a runnable ``agent.json``), with its own metadata cache (``tuf-os/``).

Deliberately not here: the version floor. Whether a genuine image is a rollback is decided
where it is installed, against the version *committed*
(:mod:`racklet.bmc._state.bmc_slots`, rules in :mod:`racklet.versions`); a floor raised at
verification would let a build that fails its trial block every older release.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_errors
from tuf.ngclient import FetcherInterface, UpdaterConfig  # type: ignore[attr-defined]

from racklet.bmc._state.firmware import ImageUpload, VerifiedImage
from racklet.bmc.errors import ImageRejected
from racklet.boot import (
    DEFAULT_CHANNEL,
    BootError,
    BootLimits,
    PayloadManifest,
    verify_held_payload,
)
from racklet.boot._tuf_client import updater_config
from racklet.boot._tuf_updater import StrictUpdater
from racklet.config import make_dir
from racklet.wire import FIRMWARE_CHANNEL

CHANNEL = FIRMWARE_CHANNEL
CACHE_DIR = "tuf-firmware"
OS_CACHE_DIR = "tuf-os"
MAX_METADATA_FILES = 32
_BASE = "bundle:///"
_METADATA_NAME = re.compile(r"(?:[0-9]{1,9}\.)?[a-z0-9][a-z0-9.-]{0,63}\.json")


class _BundleFetcher(FetcherInterface):  # type: ignore[misc]
    """Serves ngclient the metadata that came with the push; anything else is a 404."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = files

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = url.removeprefix(f"{_BASE}metadata/")
        data = self._files.get(name) if name != url else None
        if data is None:
            raise tuf_errors.DownloadHTTPError(f"{name} was not sent with the image", 404)
        return iter([data])


def _bundle(oem: Mapping[str, Any] | None) -> tuple[str, dict[str, bytes]]:
    """The target path and metadata files of the push's ``OemParameters``."""
    racklet = (oem or {}).get("Racklet")
    if not isinstance(racklet, dict):
        raise ImageRejected("the push carries no TUF metadata (OemParameters.Racklet)")
    target = racklet.get("TargetPath")
    metadata = racklet.get("TufMetadata")
    if not isinstance(target, str) or not isinstance(metadata, dict):
        raise ImageRejected("OemParameters.Racklet needs TargetPath and TufMetadata")
    if len(metadata) > MAX_METADATA_FILES:
        raise ImageRejected(f"more than {MAX_METADATA_FILES} TUF metadata files sent")
    files: dict[str, bytes] = {}
    for name, document in metadata.items():
        if not _METADATA_NAME.fullmatch(name) or not isinstance(document, dict):
            raise ImageRejected(f"TufMetadata entry {name!r} is not a metadata document")
        files[name] = json.dumps(document).encode()
    return target, files


def _parse_target(target: str, channels: tuple[str, ...]) -> tuple[str, str, str]:
    parts = target.split("/")
    if len(parts) != 4 or parts[0] not in channels or not all(parts):
        allowed = " or ".join(channels)
        raise ImageRejected(f"{target!r} is not a <{allowed}>/<name>/<version>/<file> target")
    return parts[0], parts[1], parts[2]


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return f"TUF metadata not signed by a trusted key: {text}"
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return f"TUF metadata expired: {text}"
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return f"TUF metadata older than the BMC has seen (rollback): {text}"
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        return f"the image does not match its signed target (tampered): {text}"
    return f"TUF verification failed: {text}"


class TufImageVerifier:
    """An :data:`~racklet.bmc.ImageVerifier` anchored in ``state_dir/trust.json``'s TUF root."""

    def __init__(self, state_dir: Path, limits: BootLimits | None = None) -> None:
        self._state_dir = state_dir
        self._limits = limits or BootLimits()
        """The unit bootstrap's limits, which a pushed OS payload is held to as well."""
        self._lock = threading.Lock()

    def __call__(self, upload: ImageUpload) -> VerifiedImage:
        target, files = _bundle(upload.oem)
        root, os_channel = self._trust()
        channel, name, version = _parse_target(target, (CHANNEL, os_channel))
        with self._lock:  # one verification at a time: the metadata caches are shared
            if channel == CHANNEL:
                self._verify(upload.path, target, files, root)
                return VerifiedImage(name, version)
            manifest = self._verify_os(upload.path, target, files, root, os_channel)
        return VerifiedImage(manifest.name, manifest.version, os_payload=manifest)

    def _trust(self) -> tuple[bytes, str]:
        """The TUF root the BMC holds and the channel its unit follows."""
        try:
            trust = json.loads((self._state_dir / "trust.json").read_text())
            root = trust["tufRoot"]
            channel = trust.get("channel", DEFAULT_CHANNEL)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ImageRejected(f"the BMC has no trusted TUF root: {exc}") from exc
        if not isinstance(root, str):
            raise ImageRejected("the BMC's trust.json tufRoot is not metadata text")
        if not isinstance(channel, str) or channel == CHANNEL:
            raise ImageRejected(f"the BMC's trust.json names no usable unit channel: {channel!r}")
        return root.encode(), channel

    def _updater(
        self, cache: Path, files: dict[str, bytes], root: bytes, config: UpdaterConfig
    ) -> StrictUpdater:
        """An updater over the pushed metadata, anchored in the BMC's root, refreshed."""
        make_dir(cache)
        config.max_root_rotations = MAX_METADATA_FILES
        updater = StrictUpdater(
            str(cache),
            f"{_BASE}metadata/",
            target_base_url=f"{_BASE}targets/",
            fetcher=_BundleFetcher(files),
            config=config,
            bootstrap=root,
        )
        updater.refresh()
        return updater

    def _verify_os(
        self, image: Path, target: str, files: dict[str, bytes], root: bytes, channel: str
    ) -> PayloadManifest:
        try:
            config = updater_config(self._limits)  # the bootstrap's limits
            updater = self._updater(self._state_dir / OS_CACHE_DIR, files, root, config)
            return verify_held_payload(updater, channel, target, image, self._limits)
        except BootError as exc:
            raise ImageRejected(" ".join(str(exc).split())) from exc
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as exc:
            raise ImageRejected(_reason(exc)) from exc
        except OSError as exc:
            raise ImageRejected(f"the BMC cannot read the image or its TUF cache: {exc}") from exc

    def _verify(self, image: Path, target: str, files: dict[str, bytes], root: bytes) -> None:
        try:
            updater = self._updater(self._state_dir / CACHE_DIR, files, root, UpdaterConfig())
            info = updater.get_targetinfo(target)
            if info is None:
                raise ImageRejected(f"{target} is not a target signed for {CHANNEL}")
            with image.open("rb") as handle:
                info.verify_length_and_hashes(handle)
        except ImageRejected:
            raise
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as exc:
            raise ImageRejected(_reason(exc)) from exc
        except OSError as exc:
            raise ImageRejected(f"the BMC cannot read the image or its TUF cache: {exc}") from exc
