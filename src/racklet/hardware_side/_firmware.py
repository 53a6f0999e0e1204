"""What a twin unit runs when powered: the real bootstrap client, then the real OS agent.

This is the same code a real unit runs from its initramfs; only the ``UnitHost`` under it is
simulated. A failed boot has already been reported on the console and to the BMC by the
bootstrap client; the unit then sits halted in its boot ROM until power-cycled. ``crl``: the
rack's CRL, which the OS agent's listener follows (the twin's units share the state dir, as its
BMCs do).
"""

from __future__ import annotations

from pathlib import Path

from racklet.boot import BootError
from racklet.boot.client import bootstrap
from racklet.hw import UnitHost
from racklet.node import run_os


async def unit_firmware(host: UnitHost, *, crl: Path | None = None) -> None:
    try:
        booted = await bootstrap(host)
    except BootError:
        return
    await run_os(host, booted, crl=crl)
