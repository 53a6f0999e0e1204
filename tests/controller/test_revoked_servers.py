"""A BMC whose HTTPS certificate is revoked is no BMC to the controller.

The listeners of the rack check every client certificate against the rack CA's CRL; the
controller, as a client, checks the servers' the same way. Otherwise someone holding a stolen
BMC key (its certificate revoked, the board replaced) could stand behind the BMC's address
and the controller would still send it power commands and sign its certificate requests.

A real BMC service over TLS; the controller's real client (its client certificate, pinned to
``spiffe://<rack>/bmc/unit-1``, following ``pki/crl.pem``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from racklet.net import client_context
from racklet.pki import CRL_NAME, RackCA, revoke, write_crl
from racklet.redfish import RedfishClient, RedfishUnreachable, RedfishUntrusted
from tests.bmc.conftest import UNIT, FastClock, running_bench

SERVICE_ROOT = "/redfish/v1/"


@contextlib.asynccontextmanager
async def running_bmc(tmp_path: Path) -> AsyncIterator[tuple[RackCA, Path, int]]:
    """A BMC over TLS with its rack-CA certificate; yields the CA, the pki dir and its port."""
    async with running_bench(tmp_path, FastClock(50.0)) as bench:
        pki = bench.ca.parent
        ca = RackCA.load(pki)
        write_crl(ca, pki)  # as racklet init leaves it: nothing revoked yet
        yield ca, pki, int(bench.url.rsplit(":", 1)[1])


def _controller(
    ca: RackCA, pki: Path, port: int, tmp_path: Path, unit: str = UNIT
) -> RedfishClient:
    client = ca.issue("racklet-controller", role="controller", server=False, client=True)
    key, crt = client.write(tmp_path, "controller-client")
    return RedfishClient(
        f"https://127.0.0.1:{port}",
        "racklet-controller",
        None,
        ca_bundle=pki / "ca.crt",
        client_cert=(crt, key),
        expect=ca.spiffe_id(f"bmc/{unit}"),
        crl=pki / CRL_NAME,
    )


async def test_a_bmc_with_a_revoked_certificate_is_refused_at_the_handshake(
    tmp_path: Path,
) -> None:
    async with running_bmc(tmp_path) as (ca, pki, port):
        before = _controller(ca, pki, port, tmp_path)
        try:
            assert (await before.get(SERVICE_ROOT))["@odata.id"] == SERVICE_ROOT
        finally:
            await before.aclose()
        revoke(ca, pki, (tmp_path / "bmc" / UNIT / "server.crt").read_bytes())
        after = _controller(ca, pki, port, tmp_path)
        try:
            with pytest.raises(RedfishUntrusted, match="revoked"):
                await after.get(SERVICE_ROOT)
        finally:
            await after.aclose()


async def test_a_refused_certificate_is_told_apart_from_an_outage(tmp_path: Path) -> None:
    """The unit reconciler reacts to a BMC whose certificate it refuses (a board that holds
    no identity of this rack) otherwise than to one that does not answer: the client's error
    says which it was."""
    async with running_bmc(tmp_path) as (ca, pki, port):
        # unit-1's BMC stands where unit-2's should
        other = _controller(ca, pki, port, tmp_path, unit="unit-2")
        try:
            with pytest.raises(RedfishUntrusted):
                await other.get(SERVICE_ROOT)
        finally:
            await other.aclose()
    gone = _controller(ca, pki, port, tmp_path)  # its BMC stopped: nothing listens there
    try:
        with pytest.raises(RedfishUnreachable) as refused:
            await gone.get(SERVICE_ROOT)
        assert not isinstance(refused.value, RedfishUntrusted)
    finally:
        await gone.aclose()


async def test_a_revocation_reaches_a_running_client(tmp_path: Path) -> None:
    """The followed context picks up the re-signed CRL: the next handshake fails."""
    async with running_bmc(tmp_path) as (ca, pki, port):
        client = ca.issue("racklet-controller", role="controller", server=False, client=True)
        key, crt = client.write(tmp_path, "controller-client")
        context = client_context(
            pki / "ca.crt",
            crt,
            key,
            expect=ca.spiffe_id(f"bmc/{UNIT}"),
            follow=True,
            crl=pki / CRL_NAME,
        )

        async def handshake() -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

        await handshake()
        revoke(ca, pki, (tmp_path / "bmc" / UNIT / "server.crt").read_bytes())
        refused: ssl.SSLError | None = None
        for _ in range(100):  # the CRL file is looked at again at most once a second
            try:
                await handshake()
            except ssl.SSLError as exc:
                refused = exc
                break
            await asyncio.sleep(0.1)
        assert refused is not None, "the revoked BMC was still accepted 10 s after revocation"
        assert "revoked" in str(refused)
