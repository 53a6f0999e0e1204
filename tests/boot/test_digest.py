"""The streaming verdict on a target (``_digest.StreamCheck``): bytes in, verdict out."""

from __future__ import annotations

import hashlib

import pytest
from tuf.api import exceptions as tuf_errors

from racklet.boot._digest import StreamCheck

DATA = bytes(range(256)) * 64


def _check(data: bytes = DATA, **hashes: str) -> StreamCheck:
    return StreamCheck("https://x/t", len(data), hashes or {"sha256": _hex("sha256", data)})


def _hex(algo: str, data: bytes) -> str:
    return hashlib.new(algo, data).hexdigest()


def _feed(check: StreamCheck, data: bytes, piece: int = 1000) -> None:
    for start in range(0, len(data), piece):
        check.count(len(data[start : start + piece]))
        check.update(data[start : start + piece])


def test_the_signed_bytes_pass_in_any_chunking() -> None:
    for piece in (1, 999, len(DATA)):
        check = _check()
        _feed(check, DATA, piece)
        check.verify()


def test_every_signed_hash_must_match() -> None:
    check = _check(sha256=_hex("sha256", DATA), sha512="00" * 64)
    _feed(check, DATA)
    with pytest.raises(tuf_errors.LengthOrHashMismatchError, match="does not match expected"):
        check.verify()


def test_one_flipped_bit_is_rejected() -> None:
    bad = bytearray(DATA)
    bad[4000] ^= 0x10
    check = _check()
    _feed(check, bytes(bad))
    with pytest.raises(tuf_errors.LengthOrHashMismatchError, match="Observed hash"):
        check.verify()


def test_a_short_download_is_rejected() -> None:
    check = _check()
    _feed(check, DATA[:-1])
    with pytest.raises(tuf_errors.LengthOrHashMismatchError, match="Observed length 16383"):
        check.verify()


def test_endless_data_is_cut_at_the_first_chunk_past_the_length() -> None:
    check = _check()
    _feed(check, DATA)
    with pytest.raises(tuf_errors.DownloadLengthMismatchError, match="Downloaded 16385 bytes"):
        check.count(1)


def test_unsupported_or_missing_hashes_are_refused_before_any_byte() -> None:
    with pytest.raises(tuf_errors.LengthOrHashMismatchError, match="Unsupported algorithm 'md5'"):
        StreamCheck("https://x/t", 1, {"md5": "0" * 32})
    with pytest.raises(tuf_errors.LengthOrHashMismatchError, match="signs no hash"):
        StreamCheck("https://x/t", 1, {})
