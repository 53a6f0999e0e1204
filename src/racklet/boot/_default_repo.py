"""The repository ``racklet up`` prepares: created at first start, default payload published.

One call for the CLI: it creates the TUF repository in the rack's boot dir if there is none,
publishes the default payload as the ``stable`` channel's current release unless a payload of
the requested size is already current, and returns the root metadata that each BMC hands its
unit as the trust anchor. New repositories also get the ``bmc-firmware`` channel, where BMC
firmware images are published; an existing repository keeps the channels it was created with.
"""

from __future__ import annotations

from pathlib import Path

from racklet.boot._payload import build_default_payload
from racklet.boot._tuf_repo import SETTINGS, TufRepository
from racklet.boot._types import DEFAULT_CHANNEL

DEFAULT_NAME = "racklet-os"
DEFAULT_VERSION = "0.1.0"
BMC_FIRMWARE_CHANNEL = "bmc-firmware"
"""The channel of BMC firmware images (the BMC's TUF image verifier checks them)."""


def ensure_boot_repository(boot_dir: Path, payload_bytes: int) -> str:
    """Create or reuse the repository in ``boot_dir``; return its root metadata (JSON text)."""
    if (boot_dir / SETTINGS).exists():
        repo = TufRepository.open(boot_dir)
    else:
        repo = TufRepository.create(boot_dir, channels=(DEFAULT_CHANNEL, BMC_FIRMWARE_CHANNEL))
    current = [r for r in repo.list() if r.channel == DEFAULT_CHANNEL and r.current]
    sizes = [f.length for r in current for f in r.files]
    if sizes != [payload_bytes]:
        payload = build_default_payload(payload_bytes, DEFAULT_VERSION)
        repo.publish(DEFAULT_CHANNEL, DEFAULT_NAME, DEFAULT_VERSION, {"payload.bin": payload})
    return repo.root_bytes().decode()
