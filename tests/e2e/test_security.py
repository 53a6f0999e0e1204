"""End to end, as an attacker on loopback would probe a running rack: revocation reaches
every listener that takes client certificates without a restart, and one component's
identity cannot stand in for another's (docs/security.md)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from racklet.boot import TrustBundle, TrustError, UnitIdentity, unit_client_context
from racklet.net import client_context, server_context
from racklet.pki import RackCA
from tests.e2e.conftest import RunningRack, phase

UNITS = ("unit-1", "unit-2")
REVOCATION_BOUND = 5.0


def _both_running(units: dict[str, dict[str, object]]) -> bool:
    return all(phase(units, name) == "Running" for name in UNITS)


def _get(port: int, context: ssl.SSLContext, path: str) -> str:
    """One HTTPS request on a fresh connection: the status line, or "refused: ..." when the
    handshake (or, in TLS 1.3, the server's verdict on our certificate just after it) fails."""
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(request)
            head = tls.recv(64).decode(errors="replace")
    except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
        return f"refused: {exc}"
    return head.split("\r\n", 1)[0] if head else "refused: closed"


def _listeners(rack: RunningRack) -> dict[str, tuple[int, str]]:
    config = rack.config
    bmc = urlsplit(config["units"][0]["bmc"]["url"]).port
    controller = config["controller"]
    return {
        "bmc": (int(bmc or 0), "/redfish/v1/Systems"),
        "machine": (int(controller["machinePort"]), "/boot/v1/metadata/timestamp.json"),
        "bulk": (int(controller["bulkPort"]), "/boot/v1/targets/none"),
        # the unit's OS agent: certificates optional, so a revoked one must fail the handshake
        "agent": (int(config["units"][0]["agentPort"]), "/metrics"),
    }


def test_a_revocation_reaches_every_running_listener(
    small_rack: RunningRack, tmp_path: Path
) -> None:
    rack = small_rack
    rack.wait_for(_both_running, "2/2 Running (every peer pinned, every role mapped)")
    ca = RackCA.load(rack.state_dir / "pki")
    # A copy of unit-1's identity as a thief would hold it: a certificate every one of the
    # listeners accepts at the handshake.
    stolen = ca.issue("unit-1", role="unit/unit-1", server=False, client=True, days=1)
    key, crt = stolen.write(tmp_path, "stolen")
    context = client_context(rack.state_dir / "pki" / "ca.crt", crt, key)
    listeners = _listeners(rack)
    for name, (port, path) in listeners.items():
        assert _get(port, context, path).startswith("HTTP/1.1"), name
    pids = (rack.process.pid, *sorted(p.read_text() for p in rack.state_dir.glob("*.pid")))

    rack.cli("pki", "revoke", str(crt))
    revoked_at = time.monotonic()
    took: dict[str, float] = {}
    deadline = revoked_at + 60  # generous: the bound is checked below, not by the loop
    while len(took) < len(listeners) and time.monotonic() < deadline:
        for name, (port, path) in listeners.items():
            if name not in took and _get(port, context, path).startswith("refused"):
                took[name] = time.monotonic() - revoked_at
        time.sleep(0.05)
    assert set(took) == set(listeners), f"still accepted after 60 s: {took}"
    assert all(seconds <= REVOCATION_BOUND for seconds in took.values()), took
    # Nothing was restarted: the same processes serve, and the real units still heartbeat.
    assert (rack.process.pid, *sorted(p.read_text() for p in rack.state_dir.glob("*.pid"))) == (
        pids
    )
    assert rack.process.poll() is None
    rack.wait_for(_both_running, "2/2 still Running")


async def _impostor(identity: UnitIdentity, tmp_path: Path) -> tuple[asyncio.Server, int]:
    pem = tmp_path / "impostor.pem"
    pem.write_text(identity.key_pem + identity.cert_pem)
    context = server_context(pem, pem)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    return server, int(server.sockets[0].getsockname()[1])


def _unit_identity(rack: RunningRack, unit: str) -> UnitIdentity:
    """What the unit OS holds: the identity its BMC hands over the backplane."""
    combined = (rack.state_dir / "bmc" / unit / "certificates" / "identity.pem").read_text()
    split = combined.index("-----BEGIN CERTIFICATE-----")
    return UnitIdentity(unit, combined[:split], combined[split:])


def test_a_unit_identity_cannot_play_the_controller_or_log_in_to_a_bmc(
    small_rack: RunningRack, tmp_path: Path
) -> None:
    rack = small_rack
    rack.wait_for(_both_running, "2/2 Running")
    identity = _unit_identity(rack, "unit-1")
    ca_bundle = (rack.state_dir / "pki" / "ca.crt").read_text()

    async def probe() -> tuple[str, str]:
        server, port = await _impostor(identity, tmp_path)
        try:
            # The other unit's boot client, pointed at the impostor "boot server".
            other = _unit_identity(rack, "unit-2")
            trust = TrustBundle(f"https://127.0.0.1:{port}", b"{}", ca_bundle)
            unit_ctx = unit_client_context(trust, other)
            unit_says = await asyncio.to_thread(_get, port, unit_ctx, "/boot/v1/metadata")
            # The CLI, pointed at the impostor "controller API".
            config = rack.config
            config["api"]["url"] = f"https://127.0.0.1:{port}"
            path = tmp_path / "racklet.yaml"
            path.write_text(yaml.safe_dump(config))
            process = await asyncio.create_subprocess_exec(
                *_cli(path, "get", "units"),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await process.communicate()
            assert process.returncode == 1
            return unit_says, err.decode()
        finally:
            server.close()
            await server.wait_closed()

    unit_says, cli_says = asyncio.run(probe())
    assert unit_says.startswith("refused") and "not spiffe://rack-1/controller" in unit_says
    assert cli_says.count("\n") == 1 and "spiffe://rack-1/unit/unit-1" in cli_says, cli_says
    # As a client of a BMC: a rack-CA certificate, but no role there. The controller's is one.
    key_cert = tmp_path / "unit.pem"
    key_cert.write_text(identity.key_pem + identity.cert_pem)
    bmc_port = _listeners(rack)["bmc"][0]
    ca_crt = rack.state_dir / "pki" / "ca.crt"
    as_unit = client_context(ca_crt, key_cert, key_cert)
    assert _get(bmc_port, as_unit, "/redfish/v1/Systems").startswith("HTTP/1.1 401")
    ctl = rack.state_dir / "controller"
    as_controller = client_context(ca_crt, ctl / "client.crt", ctl / "client.key")
    assert _get(bmc_port, as_controller, "/redfish/v1/Systems").startswith("HTTP/1.1 200")


def _cli(config: Path, *args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "racklet.cli", "--config", str(config), *args]


def test_an_identity_without_a_role_is_no_unit(tmp_path: Path) -> None:
    """A unit identity from before roles cannot pin its controller: it is re-issued instead
    of being trusted loosely (the controller re-issues it, see docs/security.md)."""
    ca = RackCA.create(tmp_path)
    old = ca.issue("unit-1", client=True)
    identity = UnitIdentity("unit-1", old.key_pem.decode(), old.cert_pem.decode())
    trust = TrustBundle("https://127.0.0.1:1", b"{}", ca.cert_pem.decode())
    with pytest.raises(TrustError, match="no role identity"):
        unit_client_context(trust, identity)
