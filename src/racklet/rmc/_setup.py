"""Putting an RMC into a rack's state dir and serving it: what ``racklet up`` calls.

``<state-dir>/rmc/`` holds the RMC's HTTPS identity (``server.key`` 0600, ``server.crt``,
issued by the rack CA) and ``accounts.json`` (0600, scrypt hashes; the password of the
``admin`` account also in ``admin.password``, 0600, for the config file).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from racklet.bmc import write_accounts
from racklet.config import RackConfig, write_private
from racklet.net import AppServer, pem_identity, server_context
from racklet.pki import RackCA
from racklet.rmc._service import RmcService, RmcSettings, sources_from_config

RMC_USER = "admin"


def rmc_dir(config: RackConfig) -> Path:
    return config.layout.root / "rmc"


def prepare_rmc(directory: Path, ca: RackCA) -> str:
    """Create the RMC's identity and admin account once; return the admin password."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / "server.crt", directory / "server.key"
    if not key.exists() or not crt.exists() or pem_identity(crt.read_bytes()) is None:
        ca.issue("rmc", role="rmc").write(directory, "server")  # an old rack's gets its role
    secret = directory / "admin.password"
    if secret.exists() and (directory / "accounts.json").exists():
        return secret.read_text().strip()
    password = secrets.token_urlsafe(18)
    write_private(secret, password + "\n")
    write_accounts(directory / "accounts.json", RMC_USER, password)
    return password


@dataclass
class RunningRmc:
    service: RmcService
    server: AppServer
    url: str

    async def stop(self) -> None:
        await self.server.stop()
        await self.service.stop()


async def serve_rmc(config: RackConfig, *, port: int, host: str = "127.0.0.1") -> RunningRmc:
    """Start the RMC for every BMC of ``config`` on ``https://host:port`` (after prepare)."""
    directory = rmc_dir(config)
    service = RmcService(
        RmcSettings(
            sources=sources_from_config(config),
            ca_bundle=config.layout.ca_cert,
            accounts_file=directory / "accounts.json",
            name=config.rack.name,
        )
    )
    await service.start()
    server = AppServer(
        service.app,
        host=host,
        port=port,
        ssl_context=server_context(directory / "server.crt", directory / "server.key"),
        name="rmc",
    )
    try:
        await server.start()
    except BaseException:
        await service.stop()
        raise
    return RunningRmc(service, server, f"https://{host}:{port}")
