"""Check a download against its signed TUF target info while it streams: no I/O here.

ngclient's ``download_target`` spools a target to a temp file, re-reads it to hash it and
copies it again to its destination: three passes over a 64 MB payload. The bootstrap instead
feeds each chunk once through a :class:`StreamCheck` (and writes it once into the slot); the
verdict is the same as ngclient's: a download longer than the signed length is cut off as
soon as it passes it (endless data), and it is accepted only if its length and *every* signed
hash match. Errors are python-tuf's own exception types, so they translate like ngclient's.
"""

from __future__ import annotations

import hashlib
import hmac

from tuf.api import exceptions as tuf_errors

# TUF names hash algorithms as securesystemslib does; these are the hashlib ones it accepts.
_ALGORITHMS = {"sha224", "sha256", "sha384", "sha512", "blake2b", "blake2s"}


class StreamCheck:
    """Length and hashes of one target, fed chunk by chunk."""

    def __init__(self, url: str, length: int, hashes: dict[str, str]) -> None:
        if not hashes:
            raise tuf_errors.LengthOrHashMismatchError(f"{url}: the target info signs no hash")
        unsupported = sorted(set(hashes) - _ALGORITHMS)
        if unsupported:
            raise tuf_errors.LengthOrHashMismatchError(f"Unsupported algorithm '{unsupported[0]}'")
        self._url = url
        self._length = length
        self._expected = dict(hashes)
        self._digests = {algo: hashlib.new(algo) for algo in hashes}
        self.received = 0

    def count(self, size: int) -> None:
        """Account for ``size`` more bytes on the wire; raise once past the signed length."""
        self.received += size
        if self.received > self._length:
            raise tuf_errors.DownloadLengthMismatchError(
                f"Downloaded {self.received} bytes exceeding the maximum allowed length of "
                f"{self._length}"
            )

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash bytes already counted (callers batch chunks: hashlib frees the GIL on them)."""
        for digest in self._digests.values():
            digest.update(data)

    def verify(self) -> None:
        """Accept the whole download, or raise ``LengthOrHashMismatchError``."""
        if self.received != self._length:
            raise tuf_errors.LengthOrHashMismatchError(
                f"Observed length {self.received} does not match expected length {self._length}"
            )
        for algo, expected in self._expected.items():
            observed = self._digests[algo].hexdigest()
            if not hmac.compare_digest(observed.encode(), expected.lower().encode()):
                raise tuf_errors.LengthOrHashMismatchError(
                    f"Observed hash {observed} does not match expected hash {expected}"
                )
