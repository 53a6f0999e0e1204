"""Putting an RMC into a rack's state dir and serving it: what ``racklet up`` calls.

``<state-dir>/rmc/`` holds the RMC's HTTPS identity (``server.key`` 0600, ``server.crt``,
issued by the rack CA), the client identity it logs in to every BMC with (``client.key``
0600, ``client.crt``, common name ``racklet-rmc``: an Operator on each BMC) and
``accounts.json`` (0600, scrypt hashes; the password of the ``admin`` account also in
``admin.password``, 0600, for the config file). An optional ``cooling.yaml`` there declares
the fan zones (``docs/rmc.md``); without it one zone covers every rack fan and slot. A bad
one does not stop the rack: the RMC runs every rack fan at 100 %, logs why and raises a
critical alert (its status LED, display and ``racklet_rack_alerts``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from racklet.bmc import new_password, write_accounts
from racklet.config import RackConfig, make_dir, write_private
from racklet.hw import RackBoard
from racklet.net import AppServer, live_server_context, pem_identity
from racklet.pki import CRL_NAME, RackCA
from racklet.rmc._pid import CoolingConfig, load_cooling
from racklet.rmc._service import RmcService, RmcSettings, sources_from_config
from racklet.rmc.errors import RmcConfigError

RMC_USER = "admin"
COOLING_FILE = "cooling.yaml"
RMC_CLIENT_NAME = "racklet-rmc"
"""The common name of the RMC's client certificate, which BMCs map to Operator."""


def rmc_dir(config: RackConfig) -> Path:
    return config.layout.root / "rmc"


def prepare_rmc(directory: Path, ca: RackCA) -> str:
    """Create the RMC's identity and admin account once; return the admin password."""
    make_dir(directory)
    crt, key = directory / "server.crt", directory / "server.key"
    if not key.exists() or not crt.exists() or pem_identity(crt.read_bytes()) is None:
        ca.issue("rmc", role="rmc").write(directory, "server")  # an old rack's gets its role
    client_crt, _ = _client_identity(directory)
    if not all(path.exists() for path in _client_identity(directory)) or (
        pem_identity(client_crt.read_bytes()) is None
    ):
        ca.issue(RMC_CLIENT_NAME, role="rmc", server=False, client=True).write(directory, "client")
    secret = directory / "admin.password"
    if secret.exists() and (directory / "accounts.json").exists():
        return secret.read_text().strip()
    password = new_password()
    write_private(secret, password + "\n")
    write_accounts(directory / "accounts.json", RMC_USER, password)
    return password


def _client_identity(directory: Path) -> tuple[Path, Path]:
    return directory / "client.crt", directory / "client.key"


def bmc_credentials(directory: Path) -> tuple[Path, Path]:
    """What the RMC logs in to every BMC with: its own client certificate and key.

    The one place that decides it, so another credential (a role identity from the rack CA)
    plugs in here; never a BMC password.
    """
    found = _client_identity(directory)
    missing = [str(path) for path in found if not path.exists()]
    if missing:
        raise RmcConfigError(f"the RMC has no client identity to log in to BMCs: {missing}")
    return found


@dataclass
class RunningRmc:
    service: RmcService
    server: AppServer
    url: str

    async def stop(self) -> None:
        await self.server.stop()
        await self.service.stop()


def rack_cooling(directory: Path) -> CoolingConfig | None:
    """The declared fan zones (``cooling.yaml``), or None for the default single zone."""
    path = directory / COOLING_FILE
    return load_cooling(path) if path.exists() else None


async def serve_rmc(
    config: RackConfig, *, port: int, host: str = "127.0.0.1", board: RackBoard | None = None
) -> RunningRmc:
    """Start the RMC for every BMC of ``config`` on ``https://host:port`` (after prepare);
    with ``board`` it also runs the rack's fans and meters its busbar."""
    directory = rmc_dir(config)
    cooling: CoolingConfig | None = None
    refused: str | None = None
    if board is not None:
        try:
            cooling = await asyncio.to_thread(rack_cooling, directory)
        except RmcConfigError as exc:  # the rack keeps running; its fans fail safe
            refused = str(exc)
    service = RmcService(
        RmcSettings(
            sources=sources_from_config(config),
            ca_bundle=config.layout.ca_cert,
            accounts_file=directory / "accounts.json",
            client_cert=bmc_credentials(directory),
            name=config.rack.name,
            board=board,
            cooling=cooling,
            cooling_refused=refused,
            host=host,
            https_port=port,
            server_cert=directory / "server.crt",
            update_origins=(config.controller.machine_url,),
            crl=config.layout.pki / CRL_NAME,
        )
    )
    await service.start()
    server = AppServer(
        service.app,
        host=host,
        port=port,
        # Follows server.crt/server.key, so a certificate replaced through the RMC's
        # CertificateService serves the next handshake; a client certificate from the rack
        # CA (the controller's) is a login, checked against the rack's CRL as it changes.
        ssl_context=live_server_context(
            directory / "server.crt",
            directory / "server.key",
            ca=config.layout.ca_cert,
            crl=config.layout.pki / CRL_NAME,
            require_client_cert=False,
        ),
        name="rmc",
    )
    try:
        await server.start()
    except BaseException:
        await service.stop()
        raise
    return RunningRmc(service, server, f"https://{host}:{port}")
