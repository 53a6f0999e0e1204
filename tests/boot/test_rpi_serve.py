"""The Raspberry Pi pair listener: what a Pi (or an attacker) can and cannot get from it.

A real listener on 127.0.0.1, a real rack CA, real TLS clients (httpx, curl) and openssl as the
Pi firmware's stand-in for the signature check.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from racklet.boot.rpi import (
    PairServer,
    RpiBootError,
    RpiServeError,
    build_boot_pair,
    eeprom_config,
)
from racklet.net import client_context, server_context
from racklet.pki import RackCA
from tests.boot.fakes import free_port

HTTP_PATH = "rpi/rack-1"


@dataclass(frozen=True)
class Kit:
    """Everything a test needs: a built pair, its signing key, and a rack CA identity."""

    www: Path
    private: Path
    public: Path
    ca_cert: Path
    cert: Path
    key: Path
    payload: Path


def _openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, check=False)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    root = tmp_path_factory.mktemp("rpi-serve")
    private, public = root / "rpi-signing.pem", root / "rpi-signing.pub.pem"
    assert _openssl("genrsa", "-out", str(private), "2048").returncode == 0
    assert _openssl("rsa", "-in", str(private), "-pubout", "-out", str(public)).returncode == 0
    payload = root / "payload"
    payload.mkdir()
    (payload / "config.txt").write_text("kernel=kernel_2712.img\n")
    (payload / "kernel_2712.img").write_bytes(os.urandom(400_000))
    www = root / "www"
    build_boot_pair(payload, private, www)
    pki = root / "pki"
    pki.mkdir()
    ca = RackCA.create(pki)
    key, cert = ca.issue("rpi-boot", sans=("127.0.0.1", "localhost")).write(pki, "rpi-boot")
    return Kit(www, private, public, pki / "ca.crt", cert, key, payload)


@pytest.fixture
async def https_server(kit: Kit) -> AsyncIterator[PairServer]:
    server = PairServer(
        kit.www,
        host="127.0.0.1",
        port=free_port(),
        ssl_context=server_context(kit.cert, kit.key),
        http_path=HTTP_PATH,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _trusting(kit: Kit) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=client_context(kit.ca_cert))


def _openssl_verifies(image: Path, sig_text: str, public: Path, tmp: Path) -> bool:
    """What ``rpi-eeprom-digest -v`` does: the rsa2048 line, as binary, checked by openssl."""
    hex_sig = next(line for line in sig_text.splitlines() if line.startswith("rsa2048: "))
    sig_bin = tmp / "sig.bin"
    sig_bin.write_bytes(bytes.fromhex(hex_sig.split(" ", 1)[1]))
    result = _openssl(
        "dgst", "-sha256", "-verify", str(public), "-signature", str(sig_bin), str(image)
    )
    return result.returncode == 0 and b"Verified OK" in result.stdout


async def _raw_status(port: int, context: ssl.SSLContext | None, request_line: str) -> int:
    """Send one request line exactly as written (no client-side path normalisation)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost" if context else None
    )
    try:
        writer.write(f"{request_line}\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()
    return int(status_line.split()[1])


async def test_client_trusting_rack_ca_gets_the_pair_byte_for_byte_and_openssl_verifies(
    kit: Kit, https_server: PairServer, tmp_path: Path
) -> None:
    base = f"https://localhost:{https_server.port}/{HTTP_PATH}"
    async with _trusting(kit) as client:  # presents no client certificate, like a Pi
        image = await client.get(f"{base}/boot.img")
        sig = await client.get(f"{base}/boot.sig")
    assert image.status_code == 200 and sig.status_code == 200
    assert image.content == (kit.www / "boot.img").read_bytes()
    assert sig.content == (kit.www / "boot.sig").read_bytes()
    assert image.headers["content-type"] == "application/octet-stream"
    downloaded = tmp_path / "boot.img"
    downloaded.write_bytes(image.content)
    assert sig.text.splitlines()[0] == hashlib.sha256(image.content).hexdigest()
    assert _openssl_verifies(downloaded, sig.text, kit.public, tmp_path)


async def test_head_gives_the_size_without_the_body(kit: Kit, https_server: PairServer) -> None:
    async with _trusting(kit) as client:
        head = await client.head(f"https://localhost:{https_server.port}/{HTTP_PATH}/boot.img")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == (kit.www / "boot.img").stat().st_size
    assert head.content == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_anything_but_get_and_head_is_405_and_changes_nothing(
    kit: Kit, https_server: PairServer, method: str
) -> None:
    before = (kit.www / "boot.img").read_bytes()
    url = f"https://localhost:{https_server.port}/{HTTP_PATH}/boot.img"
    async with _trusting(kit) as client:
        response = await client.request(method, url, content=b"\x00" * 1024)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert (kit.www / "boot.img").read_bytes() == before


@pytest.mark.parametrize(
    "path",
    [
        "/",
        f"/{HTTP_PATH}/",
        "/boot.img",  # right file, wrong HTTP_PATH
        f"/{HTTP_PATH}/config.txt",
        f"/{HTTP_PATH}/.boot.img.tmp",  # a build's temporary file
        "/net_install/boot.img",
    ],
)
async def test_other_paths_are_404(kit: Kit, https_server: PairServer, path: str) -> None:
    async with _trusting(kit) as client:
        response = await client.get(f"https://localhost:{https_server.port}{path}")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "target",
    [
        f"/{HTTP_PATH}/../../payload/config.txt",
        f"/{HTTP_PATH}/%2e%2e/%2e%2e/payload/config.txt",
        f"/{HTTP_PATH}/..%2f..%2fpayload%2fconfig.txt",
        f"/{HTTP_PATH}//boot.img",
        f"/{HTTP_PATH}/./boot.img",
        "/../../../../etc/passwd",
    ],
)
async def test_traversal_is_refused(kit: Kit, https_server: PairServer, target: str) -> None:
    status = await _raw_status(
        https_server.port, client_context(kit.ca_cert), f"GET {target} HTTP/1.1"
    )
    assert status == 404


async def test_tls_without_trusting_the_rack_ca_fails(https_server: PairServer) -> None:
    url = f"https://localhost:{https_server.port}/{HTTP_PATH}/boot.img"
    async with httpx.AsyncClient() as client:  # the system's CAs, not the rack's
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(url)


async def test_plain_http_client_gets_nothing_from_the_https_listener(
    https_server: PairServer,
) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.HTTPError):
            await client.get(f"http://127.0.0.1:{https_server.port}/{HTTP_PATH}/boot.img")


async def test_a_rebuild_is_served_only_after_reload(
    kit: Kit, tmp_path: Path, https_server: PairServer
) -> None:
    www = tmp_path / "www"
    build_boot_pair(kit.payload, kit.private, www, timestamp=1)
    server = PairServer(
        www,
        host="127.0.0.1",
        port=free_port(),
        ssl_context=server_context(kit.cert, kit.key),
        http_path=HTTP_PATH,
        public_key=kit.public,
    )
    await server.start()
    try:
        url = f"https://localhost:{server.port}/{HTTP_PATH}/boot.sig"
        old = (www / "boot.sig").read_bytes()
        build_boot_pair(kit.payload, kit.private, www, timestamp=2)
        async with _trusting(kit) as client:
            assert (await client.get(url)).content == old  # the checked files, pinned
            await server.reload()
            fresh = (await client.get(url)).content
        assert fresh == (www / "boot.sig").read_bytes() != old
        assert b"ts: 2\n" in fresh
    finally:
        await server.stop()


async def test_a_pair_whose_hash_does_not_match_is_never_served(kit: Kit, tmp_path: Path) -> None:
    www = tmp_path / "www"
    build_boot_pair(kit.payload, kit.private, www)
    data = bytearray((www / "boot.img").read_bytes())
    data[len(data) // 2] ^= 0x01
    (www / "boot.img").write_bytes(bytes(data))
    server = PairServer(
        www, host="127.0.0.1", port=free_port(), ssl_context=server_context(kit.cert, kit.key)
    )
    with pytest.raises(RpiBootError, match="does not match the SHA-256"):
        await server.start()
    await server.stop()


def test_a_listener_demanding_client_certificates_is_refused(kit: Kit) -> None:
    context = server_context(kit.cert, kit.key, ca=kit.ca_cert, require_client_cert=True)
    with pytest.raises(RpiServeError, match="no client certificate"):
        PairServer(kit.www, host="127.0.0.1", port=1, ssl_context=context)


# --- plain HTTP: only behind the explicit opt-in, only a verified pair ------------------------


def test_plain_http_refuses_to_start_without_the_flag(kit: Kit) -> None:
    with pytest.raises(RpiServeError, match="refusing plain HTTP"):
        PairServer(kit.www, host="0.0.0.0", port=1, ssl_context=None, public_key=kit.public)
    with pytest.raises(RpiServeError, match="needs --pubkey"):
        PairServer(kit.www, host="0.0.0.0", port=1, ssl_context=None, allow_plain_http=True)


async def test_plain_http_opt_in_refuses_a_pair_signed_by_another_key(
    kit: Kit, tmp_path: Path
) -> None:
    other_private, other_public = tmp_path / "other.pem", tmp_path / "other.pub.pem"
    assert _openssl("genrsa", "-out", str(other_private), "2048").returncode == 0
    assert (
        _openssl("rsa", "-in", str(other_private), "-pubout", "-out", str(other_public)).returncode
        == 0
    )
    server = PairServer(
        kit.www,
        host="127.0.0.1",
        port=free_port(),
        ssl_context=None,
        public_key=other_public,
        allow_plain_http=True,
    )
    with pytest.raises(RpiBootError, match="does not verify"):
        await server.start()


async def test_plain_http_opt_in_serves_only_the_signed_pair_read_only(
    kit: Kit, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = PairServer(
        kit.www,
        host="127.0.0.1",
        port=free_port(),
        ssl_context=None,
        http_path=HTTP_PATH,
        public_key=kit.public,
        allow_plain_http=True,
    )
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient() as client:
            image = await client.get(f"{base}/{HTTP_PATH}/boot.img")
            sig = await client.get(f"{base}/{HTTP_PATH}/boot.sig")
            assert (await client.get(f"{base}/{HTTP_PATH}/config.txt")).status_code == 404
            assert (
                await client.put(f"{base}/{HTTP_PATH}/boot.img", content=b"x")
            ).status_code == 405
        status = await _raw_status(server.port, None, f"GET /{HTTP_PATH}/../../etc/passwd HTTP/1.1")
        assert status == 404
    finally:
        await server.stop()
    assert image.content == (kit.www / "boot.img").read_bytes()
    downloaded = tmp_path / "boot.img"
    downloaded.write_bytes(image.content)
    assert _openssl_verifies(downloaded, sig.text, kit.public, tmp_path)
    assert any("PLAIN HTTP" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


# --- the command line and the EEPROM settings ---------------------------------------------------


def _racklet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "racklet.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_refuses_plain_http_without_tls_or_flag(kit: Kit) -> None:
    done = _racklet("rpi", "serve", "--dir", str(kit.www), "--listen", "127.0.0.1:8443")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: give --cert and --key (a rack-CA server identity) to serve HTTPS"
    )
    done = _racklet("rpi", "serve", "--dir", str(kit.www), "--insecure-plain-http")
    assert done.returncode == 1
    assert "needs --pubkey" in done.stderr and "Traceback" not in done.stderr


def test_cli_serves_until_sigterm_and_curl_gets_the_pair(kit: Kit, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "racklet.cli",
            "rpi",
            "serve",
            "--dir",
            str(kit.www),
            "--listen",
            f"127.0.0.1:{port}",
            "--cert",
            str(kit.cert),
            "--key",
            str(kit.key),
            "--pubkey",
            str(kit.public),
            "--http-path",
            HTTP_PATH,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once the listener is up
        assert first.startswith(f"serving https://127.0.0.1:{port}/{HTTP_PATH}/"), first
        assert "signature verified" in first
        out = tmp_path / "boot.img"
        curl = subprocess.run(
            [
                "curl",
                "-sS",
                "--fail",
                "--cacert",
                str(kit.ca_cert),
                "-o",
                str(out),
                f"https://localhost:{port}/{HTTP_PATH}/boot.img",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert curl.returncode == 0, curl.stderr
        assert out.read_bytes() == (kit.www / "boot.img").read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 0


def test_eeprom_config_pins_the_rack_ca_the_way_raspberry_pi_documents(
    kit: Kit, tmp_path: Path
) -> None:
    der = tmp_path / "ca.der"
    assert (
        _openssl("x509", "-in", str(kit.ca_cert), "-out", str(der), "-outform", "DER").returncode
        == 0
    )
    text = eeprom_config("boot.rack.lan", 8443, HTTP_PATH, ca_cert=kit.ca_cert)
    lines = text.splitlines()
    assert "HTTP_HOST=boot.rack.lan" in lines
    assert "HTTP_PORT=8443" in lines
    assert f"HTTP_PATH={HTTP_PATH}" in lines
    assert f"HTTP_CACERT_HASH={hashlib.sha256(der.read_bytes()).hexdigest()}" in lines
    plain = eeprom_config("boot.rack.lan", 80, HTTP_PATH, ca_cert=None)
    assert "HTTP_CACERT_HASH" not in plain
    with pytest.raises(RpiServeError, match="HTTP_HOST"):
        eeprom_config("https://Boot.Rack/", 443, HTTP_PATH, ca_cert=None)
