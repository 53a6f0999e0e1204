"""The rack CA's identities work as TLS servers and mutual-TLS clients, and secrets are 0600."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from racklet.net import AppServer, client_context, peer_common_name, server_context
from racklet.pki import PkiError, RackCA


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _whoami(request: Request) -> JSONResponse:
    return JSONResponse({"peer": peer_common_name(request.scope)})


@pytest.fixture
def ca(tmp_path: Path) -> RackCA:
    return RackCA.create(tmp_path / "pki")


def test_ca_key_is_private_and_reloads(ca: RackCA, tmp_path: Path) -> None:
    key = tmp_path / "pki" / "ca.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert RackCA.load(tmp_path / "pki").cert == ca.cert


def test_loading_a_missing_ca_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=str(tmp_path / "nowhere")):
        RackCA.load(tmp_path / "nowhere")


def test_identity_must_be_server_or_client(ca: RackCA) -> None:
    with pytest.raises(PkiError):
        ca.issue("nothing", server=False, client=False)


async def test_mutual_tls_names_the_peer(ca: RackCA, tmp_path: Path) -> None:
    server_key, server_crt = ca.issue("server").write(tmp_path, "server")
    client_key, client_crt = ca.issue("unit-7", server=False, client=True).write(tmp_path, "client")
    assert stat.S_IMODE(client_key.stat().st_mode) == 0o600
    ca_path = tmp_path / "pki" / "ca.crt"
    port = _free_port()
    server = AppServer(
        Starlette(routes=[Route("/", _whoami)]),
        port=port,
        ssl_context=server_context(server_crt, server_key, ca=ca_path, require_client_cert=True),
        name="test",
    )
    await server.start()
    try:
        with_cert = client_context(ca_path, client_crt, client_key)
        async with httpx.AsyncClient(verify=with_cert) as client:
            response = await client.get(f"https://127.0.0.1:{port}/")
        assert response.json() == {"peer": "unit-7"}

        async with httpx.AsyncClient(verify=client_context(ca_path)) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"https://127.0.0.1:{port}/")

        stranger = RackCA.create(tmp_path / "other")
        key, crt = stranger.issue("unit-7", server=False, client=True).write(tmp_path, "stranger")
        async with httpx.AsyncClient(verify=client_context(ca_path, crt, key)) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"https://127.0.0.1:{port}/")
    finally:
        await server.stop()


def test_server_context_refuses_old_tls(ca: RackCA, tmp_path: Path) -> None:
    key, crt = ca.issue("server").write(tmp_path, "server")
    assert server_context(crt, key).minimum_version >= ssl.TLSVersion.TLSv1_2


def test_plain_http_only_on_loopback() -> None:
    with pytest.raises(ValueError, match="TLS"):
        AppServer(Starlette(), host="0.0.0.0", port=1, ssl_context=None, name="x")
    # the one exception is named by the caller, never implied
    AppServer(
        Starlette(), host="0.0.0.0", port=1, ssl_context=None, name="x", insecure_plain_http=True
    )


async def test_taken_port_raises_instead_of_exiting() -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = AppServer(Starlette(), port=port, ssl_context=None, name="late")
        with pytest.raises(OSError, match="cannot listen"):
            await server.start()
        await server.stop()


async def test_unknown_http_method_is_not_implemented(ca: RackCA, tmp_path: Path) -> None:
    key, crt = ca.issue("server").write(tmp_path, "server")
    port = _free_port()
    server = AppServer(
        Starlette(routes=[Route("/", _whoami)]),
        port=port,
        ssl_context=server_context(crt, key),
        name="test",
    )
    await server.start()
    try:
        async with httpx.AsyncClient(verify=client_context(tmp_path / "pki" / "ca.crt")) as client:
            response = await client.request("FAKEMETHODFORTEST", f"https://127.0.0.1:{port}/")
            assert response.status_code == 501
            assert (await client.get(f"https://127.0.0.1:{port}/")).status_code == 200
    finally:
        await server.stop()
