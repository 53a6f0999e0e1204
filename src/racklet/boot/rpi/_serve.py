"""Serve the ``boot.img``/``boot.sig`` pair to Raspberry Pi bootloaders: two files, read-only.

A Pi's EEPROM bootloader presents no client certificate, so it cannot use the controller's
mutual-TLS machine listener. This listener authenticates the server only, and is safe for
that because all it can do is hand out two public, signed files: ``GET``/``HEAD`` of exactly
``/<HTTP_PATH>/boot.img`` and ``/<HTTP_PATH>/boot.sig``; any other path is 404 and any other
method 405. Nothing here changes state.

- **HTTPS (default):** a rack-CA server certificate; a Pi 5 whose EEPROM holds the rack CA
  (``HTTP_CACERT_HASH`` + ``rpi-eeprom-config --cacertder``) downloads over TLS.
- **Plain HTTP (opt-in):** a Pi 4 bootloader cannot use a custom CA, so it speaks plain
  HTTP whenever ``HTTP_HOST`` is set. Racklet serves no plain HTTP off loopback unless the
  owner passes ``allow_plain_http=True`` *and* the public key the Pis trust: the pair is then
  refused unless its RSA signature verifies, and a warning is logged at start and on each
  download. See docs/rpi-boot.md for why this is the only exception.

The files are opened and checked once (:class:`PairSnapshot`); :meth:`PairServer.reload`
re-reads them after a rebuild.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from starlette.types import Receive, Scope, Send

from racklet.boot.rpi._build import IMAGE_NAME, SIG_NAME
from racklet.boot.rpi._snapshot import PairFile, PairSnapshot, read_at
from racklet.boot.rpi.errors import RpiServeError
from racklet.log import get_logger
from racklet.net import AppServer

CHUNK_BYTES = 1 << 20
DEFAULT_HTTP_PATH = "net_install"  # the bootloader's own default HTTP_PATH
_ALLOWED = ("GET", "HEAD")


def normalize_http_path(http_path: str) -> str:
    """``HTTP_PATH`` as the bootloader uses it: no leading/trailing ``/``, no ``.``/``..``."""
    parts = [p for p in http_path.strip("/").split("/") if p]
    if any(p in (".", "..") for p in parts) or any(c in http_path for c in "?#%\\ "):
        raise RpiServeError(f"HTTP_PATH {http_path!r} must be plain path segments")
    return "/".join(parts)


class PairApp:
    """The ASGI app: the two files of the current snapshot, nothing else."""

    def __init__(self, snapshot: PairSnapshot, http_path: str, *, plain: bool) -> None:
        self.snapshot = snapshot
        prefix = f"/{http_path}" if http_path else ""
        self._routes = {f"{prefix}/{IMAGE_NAME}": "image", f"{prefix}/{SIG_NAME}": "sig"}
        self._plain = plain
        self._log = get_logger("rpi-boot-server")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method not in _ALLOWED:
            await _text(
                send, 405, "only GET and HEAD are served here\n", [(b"allow", b"GET, HEAD")]
            )
            return
        which = self._routes.get(path)  # exact match: "..", "%2e%2e" and "//" never match
        if which is None:
            await _text(send, 404, "not found\n")
            return
        snapshot = self.snapshot  # a reload swaps it; this request keeps the one it started on
        file = snapshot.image if which == "image" else snapshot.sig_file
        client = scope.get("client") or ("?", 0)
        if self._plain:
            self._log.warning(f"serving {file.name} to {client[0]} over PLAIN HTTP")
        else:
            self._log.info(f"serving {file.name} to {client[0]}")
        await _stream(send, file, snapshot.sig.sha256.hex(), head=method == "HEAD")


async def _text(
    send: Send, status: int, body: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = body.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(data)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _stream(send: Send, file: PairFile, image_sha: str, *, head: bool) -> None:
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(file.size).encode()),
        (b"etag", f'"{image_sha[:32]}-{file.name}"'.encode()),
        (b"cache-control", b"no-cache"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if head or file.size == 0:
        await send({"type": "http.response.body", "body": b""})
        return
    offset = 0
    while offset < file.size:
        chunk = await asyncio.to_thread(read_at, file, offset, min(CHUNK_BYTES, file.size - offset))
        if not chunk:  # cannot happen with a pinned inode unless the file was truncated
            raise RpiServeError(f"{file.name} was truncated while being served")
        offset += len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": offset < file.size})


class PairServer:
    """Serve one directory's pair on one address; ``start``/``stop`` from the owner's loop."""

    def __init__(
        self,
        pair_dir: Path,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        http_path: str = DEFAULT_HTTP_PATH,
        public_key: Path | None = None,
        allow_plain_http: bool = False,
    ) -> None:
        if ssl_context is None:
            if not allow_plain_http:
                raise RpiServeError(
                    "refusing plain HTTP: give a TLS certificate, or opt in explicitly "
                    "(--insecure-plain-http) for Pi 4 bootloaders that cannot do HTTPS"
                )
            if public_key is None:
                raise RpiServeError(
                    "plain HTTP needs --pubkey: only a pair whose signature verifies is served"
                )
        elif ssl_context.verify_mode == ssl.CERT_REQUIRED:
            raise RpiServeError("a Pi bootloader presents no client certificate; use server auth")
        self.pair_dir = pair_dir
        self.host, self.port = host, port
        self.http_path = normalize_http_path(http_path)
        self._ssl = ssl_context
        self._public_key = public_key
        self._app: PairApp | None = None
        self._listener: AppServer | None = None
        self._retired: list[PairSnapshot] = []
        self._log = get_logger("rpi-boot-server")

    @property
    def plain(self) -> bool:
        return self._ssl is None

    @property
    def snapshot(self) -> PairSnapshot | None:
        return self._app.snapshot if self._app is not None else None

    @property
    def url(self) -> str:
        scheme = "http" if self.plain else "https"
        path = f"/{self.http_path}" if self.http_path else ""
        return f"{scheme}://{self.host}:{self.port}{path}/"

    async def start(self) -> None:
        """Load and check the pair, then listen (raises :class:`RpiServeError` on failure)."""
        snapshot = await asyncio.to_thread(PairSnapshot.load, self.pair_dir, self._public_key)
        app = PairApp(snapshot, self.http_path, plain=self.plain)
        listener = AppServer(
            app,
            host=self.host,
            port=self.port,
            ssl_context=self._ssl,
            name="rpi-boot",
            insecure_plain_http=self._ssl is None,  # only with --insecure-plain-http
        )
        if self._ssl is None:
            self._log.warning(
                f"PLAIN HTTP on {self.host}:{self.port} (--insecure-plain-http): the transfer is "
                "unencrypted and unauthenticated; only the signature in boot.sig protects the Pi"
            )
        try:
            await listener.start()
        except OSError as exc:
            snapshot.close()
            raise RpiServeError(str(exc)) from exc
        except BaseException:
            snapshot.close()
            raise
        self._app, self._listener = app, listener
        how = "signature verified" if snapshot.signed else "hash checked, signature not"
        self._log.info(f"serving {self.pair_dir} at {self.url} ({how})")

    async def reload(self) -> None:
        """Re-open and re-check the pair after a rebuild; on failure keep serving the old one."""
        if self._app is None:
            raise RpiServeError("the server is not running")
        fresh = await asyncio.to_thread(PairSnapshot.load, self.pair_dir, self._public_key)
        old, self._app.snapshot = self._app.snapshot, fresh
        # Downloads still streaming from ``old`` hold their own PairFile; closing it would cut
        # them short, so the old descriptors are released only when the server stops.
        self._retired.append(old)

    async def stop(self) -> None:
        """Stop listening and close the files (idempotent)."""
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        if self._app is not None:
            self._app.snapshot.close()
            self._app = None
        for old in self._retired:
            old.close()
        self._retired.clear()


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[v6]:PORT`` for IPv6) to ``(host, port)``."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RpiServeError(f"--listen takes ADDR:PORT, e.g. 0.0.0.0:8443, not {text!r}")
    return host, int(port_text)
