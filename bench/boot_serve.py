"""Serve ``racklet.boot.server.create_boot_app`` the way the controller does, for benchmarks.

Mounted at ``/boot/v1`` on an :class:`racklet.net.AppServer` with a mutual-TLS context
(``require_client_cert=True``), in its own process so its CPU time can be read from /proc.
Prints ``ready`` when it listens; stops on SIGTERM. Usage::

    python -m bench.boot_serve REPO PORT CERT KEY CA [--uvloop]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount

from bench.boot_tools import serve_until_sigterm
from racklet.boot import server as boot_server
from racklet.boot.server import create_boot_app
from racklet.net import AppServer, run_loop, server_context


async def _serve(repo: Path, port: int, cert: Path, key: Path, ca: Path) -> None:
    app = Starlette(routes=[Mount("/boot/v1", app=create_boot_app(repo))])
    context = server_context(cert, key, ca=ca, require_client_cert=True)
    server = AppServer(app, port=port, ssl_context=context, name="boot-bench")
    await serve_until_sigterm(server)


def main(argv: list[str]) -> int:
    repo, port, cert, key, ca = argv[:5]
    chunk = os.environ.get("RACKLET_BENCH_CHUNK")
    if chunk:  # experiment with the streaming chunk size without editing the server
        boot_server.CHUNK_BYTES = int(chunk)
    run_loop(
        _serve(Path(repo), int(port), Path(cert), Path(key), Path(ca)), uvloop="--uvloop" in argv
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
