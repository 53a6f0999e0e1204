"""TLS contexts for every Racklet listener and client: TLS 1.2 or newer, modern ciphers only.

Two things beyond the defaults, each in one place:

- **Pinning** (``expect=``): a client context that also checks, right after the handshake,
  that the peer's certificate carries the SPIFFE ID it expects (``racklet.net._identity``).
  "Signed by the rack CA" is not enough: every rack-CA server certificate would otherwise
  stand in for every other one.
- **A known key past its expiry** (``pinned_key=``): a client that must reach a peer whose
  certificate expired while the rack was stopped (the controller renewing a BMC's
  certificate, docs/security.md) may skip the validity dates — and only those: the chain must
  still lead to the rack CA, the SPIFFE ID must be the expected one, and the peer's public key
  must be exactly the one the client already knows for it. An unknown key is never accepted.
- **Following files** (``live_server_context``, ``client_context(follow=True)``): the context
  handed to a server or an HTTP client dispatches each new connection to the newest
  *generation*, a fresh ``SSLContext`` built from the files whenever one of them changed
  (checked at most once per ``FOLLOW_SECONDS``). OpenSSL cannot unload a CRL from a live
  context, so a revocation, a renewed certificate or a renewed CRL takes effect on the next
  handshake without restarting anything. Connections already open keep the context they
  were made with.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from racklet.net._identity import PeerIdentityError, check_peer

_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
FOLLOW_SECONDS = 1.0
"""How often a following context looks at its files (a ``stat`` each): the bound on how
long a revocation takes to reach a running listener, plus the writer's own delay."""


_NO_CHECK_TIME = 0x200000
"""OpenSSL's ``X509_V_FLAG_NO_CHECK_TIME`` (not named by the ``ssl`` module): verify the chain
but not the validity dates."""


def public_key_der(cert_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo (DER) of a DER certificate: what ``pinned_key`` compares."""
    cert = x509.load_der_x509_certificate(cert_der)
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check(tls: ssl.SSLObject | ssl.SSLSocket) -> None:
    check_peer(tls.getpeercert(), getattr(tls.context, "racklet_expect", None))
    pinned = getattr(tls.context, "racklet_pinned_key", None)
    if pinned is not None:
        der = tls.getpeercert(binary_form=True)
        if der is None or public_key_der(der) != pinned:
            raise PeerIdentityError("the peer's key is not the one known for it")


class _PinnedObject(ssl.SSLObject):
    """An ``SSLObject`` (asyncio, uvloop, anyio) that checks the peer's identity on handshake."""

    def do_handshake(self) -> None:
        super().do_handshake()
        _check(self)


class _PinnedSocket(ssl.SSLSocket):
    """The same check for blocking sockets (``wrap_socket``: sync httpx, the bulk fetcher)."""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        _check(self)


def _base(protocol: int) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_CIPHERS)
    return context


def _server(
    cert: Path, key: Path, ca: Path | None, require_client_cert: bool, crl: Path | None
) -> ssl.SSLContext:
    context = _base(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if ca is not None:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
        # No session tickets: a resumed session skips the client certificate, and with it
        # the revocation check.
        context.options |= ssl.OP_NO_TICKET
        context.num_tickets = 0
    if crl is not None:
        context.load_verify_locations(cafile=str(crl))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def server_context(
    cert: Path, key: Path, *, ca: Path | None = None, require_client_cert: bool = False
) -> ssl.SSLContext:
    """A server context; with ``ca`` it asks for (or requires) client certificates."""
    return _server(cert, key, ca, require_client_cert, None)


def _client(
    ca: Path | str,
    cert: Path | None,
    key: Path | None,
    expect: str | None,
    pinned_key: bytes | None = None,
    crl: Path | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if crl is not None:
        context.load_verify_locations(cafile=str(crl))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    if cert is not None and key is not None:
        context.load_cert_chain(cert, key)
    if pinned_key is not None:
        context.verify_flags |= _NO_CHECK_TIME  # type: ignore[assignment]
        context.racklet_pinned_key = pinned_key  # type: ignore[attr-defined]
    if expect is not None:
        context.racklet_expect = expect  # type: ignore[attr-defined]
        context.sslobject_class = _PinnedObject
        context.sslsocket_class = _PinnedSocket
    return context


def client_context(
    ca: Path | str,
    cert: Path | None = None,
    key: Path | None = None,
    *,
    expect: str | None = None,
    follow: bool = False,
    pinned_key: bytes | None = None,
    crl: Path | None = None,
) -> ssl.SSLContext:
    """A client context that trusts only the rack CA, optionally presenting a client identity.

    ``expect``: the SPIFFE ID the server must prove (``spiffe_id(rack, "controller")``); a
    server certificate without it fails the handshake. ``follow``: pick up a renewed client
    certificate on the next connection (a long-running process with a short-lived identity).
    ``pinned_key``: the server's public key (SubjectPublicKeyInfo DER), known from before: its
    certificate may have expired, but it must carry exactly this key (and ``expect``, required
    with it); see the module docstring. ``crl``: the rack CA's CRL; a server whose certificate
    it revokes fails the handshake (as a revoked client fails at a listener), followed with
    the other files when ``follow`` is set, so a revocation reaches a running client.
    """
    if pinned_key is not None and expect is None:
        raise ValueError("a pinned key is accepted past its expiry only with an expected role")
    if not follow or cert is None:
        return _client(ca, cert, key, expect, pinned_key, crl)
    paths = tuple(Path(p) for p in (ca, cert, key, crl) if p is not None)
    return _follow(lambda: _client(ca, cert, key, expect, pinned_key, crl), paths)


def live_server_context(
    cert: Path, key: Path, *, ca: Path, crl: Path | None = None, require_client_cert: bool = True
) -> ssl.SSLContext:
    """A server context that follows its certificate, key, CA and CRL files.

    With ``crl``, OpenSSL checks each client's certificate (the leaf) against it: a revoked
    certificate fails the handshake, within ``FOLLOW_SECONDS`` of the CRL being rewritten.
    A missing or unreadable CRL fails here (``OSError``/``ssl.SSLError``), never a silent
    "no check"; a CRL that later becomes unreadable keeps the last good generation.
    """
    paths = (cert, key, ca) + ((crl,) if crl is not None else ())
    return _follow(lambda: _server(cert, key, ca, require_client_cert, crl), paths)


def _signature(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...]:
    stats = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stats.append((0, 0, 0))
            continue
        stats.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(stats)


class _Following(ssl.SSLContext):
    """A context whose ``wrap_bio``/``wrap_socket`` hand each connection to the newest
    generation built from its files. Its own settings are generation 0's; of what an owner
    sets on it later only ``options`` reaches the generations (httpcore's ALPN list does not:
    a generation offers none, and the server answers HTTP/1.1, which is all Racklet speaks)."""

    racklet_build: Callable[[], ssl.SSLContext]
    racklet_paths: tuple[Path, ...]
    racklet_current: ssl.SSLContext
    racklet_signature: tuple[tuple[int, int, int], ...]
    racklet_checked: float
    racklet_lock: threading.Lock
    generations: int

    def _generation(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self.racklet_checked < FOLLOW_SECONDS:
            return self.racklet_current
        with self.racklet_lock:  # the bulk server's thread and the event loop may both ask
            if now - self.racklet_checked < FOLLOW_SECONDS:
                return self.racklet_current
            self.racklet_checked = now
            signature = _signature(self.racklet_paths)
            if signature != self.racklet_signature:
                try:
                    fresh = self.racklet_build()
                except (OSError, ssl.SSLError, ValueError):
                    return self.racklet_current  # half-written renewal: try again next time
                fresh.options |= self.options  # what the owner set (kTLS on the bulk server)
                self.racklet_current, self.racklet_signature = fresh, signature
                self.generations += 1
            return self.racklet_current

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        return self._generation().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return self._generation().wrap_socket(*args, **kwargs)


def _follow(build: Callable[[], ssl.SSLContext], paths: tuple[Path, ...]) -> ssl.SSLContext:
    """Generation 0 from ``build``, as a :class:`_Following` context over ``paths``."""
    signature = _signature(paths)
    first = build()
    context = _Following(first.protocol)
    _copy_into(first, context)
    context.racklet_build = build
    context.racklet_paths = paths
    context.racklet_current = first
    context.racklet_signature = signature
    context.racklet_checked = time.monotonic()
    context.racklet_lock = threading.Lock()
    context.generations = 0
    return context


def _copy_into(first: ssl.SSLContext, context: ssl.SSLContext) -> None:
    """Give the dispatcher generation 0's visible settings (callers and libraries read
    ``verify_mode``, ``check_hostname``...). Connections never use its keys: they go to a
    generation."""
    context.minimum_version = first.minimum_version
    if first.protocol == ssl.PROTOCOL_TLS_CLIENT:
        context.check_hostname = first.check_hostname
    context.verify_mode = first.verify_mode
    context.verify_flags = first.verify_flags
    context.options = first.options
