"""The default boot payload: a small, deterministic tar archive that stands in for an OS image.

It holds ``etc/os-release``, ``agent.json`` (what the OS agent reads) and ``rootfs.img``, a
filler image generated from a fixed seed so the archive is exactly ``size`` bytes. Same
arguments, same bytes: a payload can be rebuilt and its SHA-256 compared. It is not an
installable OS; a real payload comes from an OS build, published with :func:`publish`.
"""

from __future__ import annotations

import hashlib
import json
import tarfile

from racklet.boot._manifest import valid_version
from racklet.boot.errors import PublishError

MIN_PAYLOAD_BYTES = 4096
MAX_PAYLOAD_BYTES = 1 << 30
OS_BOOT_SECONDS = 2.0
HEARTBEAT_INTERVAL_SECONDS = 2.0

_BLOCK = tarfile.BLOCKSIZE
_END_OF_ARCHIVE = 2 * _BLOCK
_MTIME = 1_700_000_000  # fixed, so the archive does not depend on when it was built
_FILLER_CHUNK = 1 << 20


def build_default_payload(size: int = 65536, version: str = "0.1.0") -> bytes:
    """A deterministic tar archive of exactly ``size`` bytes for OS ``version``."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise PublishError(f"payload size must be an integer, got {size!r}")
    if not MIN_PAYLOAD_BYTES <= size <= MAX_PAYLOAD_BYTES:
        raise PublishError(
            f"payload size must be between {MIN_PAYLOAD_BYTES} and {MAX_PAYLOAD_BYTES} bytes, "
            f"got {size}"
        )
    if not valid_version(version):
        raise PublishError(f"invalid OS version {version!r}")
    os_release = (
        f'NAME="Racklet OS"\nID=racklet\nVERSION_ID="{version}"\n'
        f'PRETTY_NAME="Racklet OS {version}"\n'
    ).encode()
    agent = json.dumps(
        {
            "version": version,
            "osBootSeconds": OS_BOOT_SECONDS,
            "heartbeatIntervalSeconds": HEARTBEAT_INTERVAL_SECONDS,
        },
        indent=2,
        sort_keys=True,
    ).encode()
    head = _member("etc/os-release", os_release) + _member("agent.json", agent)
    room = size - len(head) - _BLOCK - _END_OF_ARCHIVE
    filler_length = (room // _BLOCK) * _BLOCK
    if filler_length <= 0:
        raise PublishError(f"payload size {size} is too small for the default payload")
    out = bytearray(head)
    out += _header("rootfs.img", filler_length)
    _append_filler(out, filler_length, version)
    out += bytes(size - len(out))  # end-of-archive: zero blocks, padded to the exact size
    return bytes(out)


def _header(name: str, length: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = length
    info.mtime = _MTIME
    info.mode = 0o644
    info.uname = info.gname = "root"
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _member(name: str, data: bytes) -> bytes:
    padding = -len(data) % _BLOCK
    return _header(name, len(data)) + data + bytes(padding)


def _append_filler(out: bytearray, length: int, version: str) -> None:
    """Pseudo-random bytes from a fixed seed: one generated chunk, each copy stamped with its
    index so no two chunks are equal."""
    seed = f"racklet-rootfs/{version}".encode()
    chunk = hashlib.shake_256(seed).digest(_FILLER_CHUNK)
    written, index = 0, 0
    while written < length:
        stamped = index.to_bytes(8, "big") + chunk[8:]
        take = min(len(stamped), length - written)
        out += stamped[:take]
        written += take
        index += 1
