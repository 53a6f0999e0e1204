"""The unit's side of peer-to-peer distribution: serve the payload it runs to its rack.

While the OS runs, the unit serves the payload of the slot it booted (verified at boot: by
TUF as it streamed in, or re-hashed against the BMC's record before a cold boot) at
``https://<unit>:<port>/boot/v1/targets/<sha256>``, with Range requests, from the project's
one large-file server, :class:`racklet.boot.BulkTargetServer` (a selector thread writing TLS
straight to the sockets: fifteen units fetching from one peer cost its event loop nothing).
Its directory holds one hard link, named by the payload's SHA-256, to the booted slot's
``payload.bin``: no request path reaches anything else of the unit's storage.

Only another unit of the same rack may fetch: the listener requires a client certificate
from the rack CA (following the rack's CRL) that names a unit (``spiffe://<rack>/unit/…``);
a BMC, the controller or no certificate is refused at the handshake, and a certificate of
another rack's CA does not verify. What it serves is checked again by the fetching unit
(piece by piece, then whole against TUF), so a corrupted slot here wastes a peer's bandwidth
and gets this unit dropped, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from racklet.boot import BootedPayload, BulkTargetServer, slot_payload, unit_live_server_context
from racklet.config import make_dir

P2P_DIR = "p2p"
"""Below the unit's storage: the hard link its peer server serves."""


def _link_payload(storage: Path, booted: BootedPayload) -> Path:
    """``<storage>/p2p/<sha256>``, a hard link to the booted slot's payload (older links go:
    a slot rewritten since has a new inode, and the old one should not be kept alive)."""
    directory = storage / P2P_DIR
    make_dir(directory)
    for old in directory.iterdir():
        old.unlink(missing_ok=True)
    link = directory / booted.manifest.payload_sha256
    os.link(slot_payload(storage, booted.slot), link)
    return directory


class PeerServer:
    """The payload server of one running OS; :meth:`start` returns its base URL."""

    def __init__(self, storage: Path, booted: BootedPayload, crl: Path | None = None) -> None:
        self._storage = storage
        self._booted = booted
        self._crl = crl
        self._files = contextlib.ExitStack()
        self._server: BulkTargetServer | None = None

    async def start(self) -> str:
        """Serve on an ephemeral loopback port; the URL the heartbeat announces."""
        booted = self._booted
        try:
            directory = await asyncio.to_thread(_link_payload, self._storage, booted)
            live = unit_live_server_context(
                booted.identity, booted.trust, self._crl, require_client_cert=True
            )
            context = await asyncio.to_thread(self._files.enter_context, live)
            self._server = BulkTargetServer(directory, context)
            await self._server.start()
        except BaseException:
            await self.stop()
            raise
        return f"https://127.0.0.1:{self._server.port}"

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop()
        await asyncio.to_thread(self._files.close)
