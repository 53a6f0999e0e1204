"""TLS contexts from the unit identity held in memory.

``ssl`` loads certificates and keys only from files, so the PEMs go to a private temporary
directory (0700, files 0600) outside the unit's storage (``/dev/shm`` when there is one, so the
key never touches a disk) and are deleted as soon as the context has loaded them — except for
the agent's listener that follows the rack's CRL (:func:`unit_live_server_context`): it rebuilds
its context from the files on every CRL change, so they stay for the listener's lifetime and
go with it. Blocking: call these through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

from racklet.boot._types import TrustBundle, UnitIdentity
from racklet.boot.errors import TrustError
from racklet.net import (
    client_context,
    live_server_context,
    parse_id,
    pem_identity,
    server_context,
    spiffe_id,
)


def _scratch_root() -> str | None:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


@contextlib.contextmanager
def _private_files(**files: str) -> Iterator[dict[str, Path]]:
    directory = Path(tempfile.mkdtemp(prefix="racklet-identity-", dir=_scratch_root()))
    try:
        os.chmod(directory, 0o700)
        paths: dict[str, Path] = {}
        for name, text in files.items():
            path = directory / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            paths[name] = path
        yield paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def controller_identity(identity: UnitIdentity) -> str:
    """The SPIFFE ID the unit's servers must prove: its rack's controller (the trust domain
    is the one in the unit's own identity, as SPIFFE workloads learn it from their SVID)."""
    parsed = parse_id(pem_identity(identity.cert_pem))
    if parsed is None:
        raise TrustError(
            "the unit identity carries no role identity (one from before roles: the "
            "controller re-issues it through the BMC)"
        )
    return spiffe_id(parsed[0], "controller")


def unit_client_context(trust: TrustBundle, identity: UnitIdentity) -> ssl.SSLContext:
    """Mutual-TLS client context: trusts only the rack CA, presents the unit identity, and
    accepts only the controller's identity from the server (boot, bulk targets, heartbeats):
    no other rack certificate, a BMC's or another unit's, can play the boot server."""
    expect = controller_identity(identity)
    try:
        files = {"ca": trust.ca_bundle_pem, "cert": identity.cert_pem, "key": identity.key_pem}
        with _private_files(**files) as p:
            return client_context(p["ca"], p["cert"], p["key"], expect=expect)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TrustError(f"cannot build a TLS client context for the unit: {exc}") from exc


def unit_peer_client_context(
    trust: TrustBundle, identity: UnitIdentity, peer: str
) -> ssl.SSLContext:
    """Mutual-TLS client context for fetching pieces from ``peer``, another unit of the same
    rack: it accepts only ``spiffe://<this rack>/unit/<peer>`` as the server (a BMC, the
    controller, or a unit of another rack fails the handshake)."""
    parsed = parse_id(pem_identity(identity.cert_pem))
    if parsed is None:
        raise TrustError("the unit identity carries no role identity")
    try:
        expect = spiffe_id(parsed[0], "unit", peer)
        files = {"ca": trust.ca_bundle_pem, "cert": identity.cert_pem, "key": identity.key_pem}
        with _private_files(**files) as p:
            return client_context(p["ca"], p["cert"], p["key"], expect=expect)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TrustError(f"cannot build a TLS client context for peer {peer}: {exc}") from exc


def unit_server_context(identity: UnitIdentity, trust: TrustBundle | None = None) -> ssl.SSLContext:
    """Server context for the unit's own listeners (the OS agent), from the unit identity;
    with ``trust`` it also asks clients for a rack certificate (optional: a handler that
    needs one checks the peer's identity)."""
    try:
        if trust is not None:
            files = {"ca": trust.ca_bundle_pem, "cert": identity.cert_pem, "key": identity.key_pem}
            with _private_files(**files) as p:
                return server_context(p["cert"], p["key"], ca=p["ca"])
        with _private_files(cert=identity.cert_pem, key=identity.key_pem) as p:
            return server_context(p["cert"], p["key"])
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TrustError(f"cannot build a TLS server context for the unit: {exc}") from exc


@contextlib.contextmanager
def unit_live_server_context(
    identity: UnitIdentity,
    trust: TrustBundle,
    crl: Path | None,
    *,
    require_client_cert: bool = False,
) -> Iterator[ssl.SSLContext]:
    """The OS agent's listener context that follows the rack's CRL (``live_server_context``):
    client certificates stay optional at the handshake (a Prometheus scrape presents none),
    but a revoked one fails it, within ``racklet.net.FOLLOW_SECONDS`` of the CRL changing.
    The unit's PEMs stay in their private directory until the ``with`` block ends.
    ``require_client_cert``: every client must present a rack certificate (the payload it
    serves to its peers, ``racklet.node._p2p``); without ``crl``, revocation reaches it only
    at a certificate's expiry."""
    files = {"ca": trust.ca_bundle_pem, "cert": identity.cert_pem, "key": identity.key_pem}
    with _private_files(**files) as p:
        try:
            context = live_server_context(
                p["cert"], p["key"], ca=p["ca"], crl=crl, require_client_cert=require_client_cert
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise TrustError(
                f"cannot build a TLS server context for the unit with the CRL {crl}: {exc}"
            ) from exc
        yield context
