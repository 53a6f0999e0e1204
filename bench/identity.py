"""Role identities and live revocation: how fast a revocation lands, what pinning costs.

Three measurements in one run (``python -m bench identity``):

- **Revocation propagation** on a real ``racklet up --units 1`` rack: a client certificate
  that a BMC, the machine listener and the bulk-target server all accept is revoked with
  ``racklet pki revoke``; each listener is then probed with fresh handshakes every 20 ms
  until it refuses. Reported per listener: seconds from the revoke command's return to the
  first refused handshake (``--revocations`` times, a fresh certificate each).
- **Per-connection overhead** of each new mechanism, timed in isolation: the dispatch to the
  current generation, the pin check (decoding the peer certificate and comparing its ID),
  a look at the files (once a second), building a new generation (once per change).
- **Handshake cost**: mutual-TLS handshakes per second on loopback, in one process, between
  the contexts from before (fixed server context without a CRL, unpinned client) and after
  (the CRL-following server context, a client pinned to the server's SPIFFE ID), rounds
  alternating.
- **Redfish GET through the controller's client**: ``RedfishClient`` (client-certificate
  login, keep-alive, 16 requests in flight) against one real BMC process serving with the
  twin's CRL-following context, unpinned vs pinned to ``bmc/unit-1``, rounds alternating.

Loopback only; every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from racklet.bmc import write_accounts
from racklet.net import client_context, live_server_context, server_context, spiffe_id
from racklet.pki import RackCA, write_crl

_HERE = Path(__file__).resolve().parent
_PASSWORD = "bench-password-not-secret"


# -- revocation propagation on a real rack ---------------------------------------------------


def _get(port: int, context: ssl.SSLContext, path: str) -> bool:
    """A fresh mutual-TLS connection and one request: True if the server answered."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(request)
            return tls.recv(16).startswith(b"HTTP/1.1")
    except (OSError, ssl.SSLError):
        return False


@contextlib.contextmanager
def _rack(state: Path) -> Iterator[subprocess.Popen[str]]:
    argv = [sys.executable, "-m", "racklet.cli", "up", "--state-dir", str(state)]
    proc = subprocess.Popen(
        [*argv, "--units", "1", "--speed", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("racklet up exited during start-up")
            if " is up with " in line:
                break
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _propagation(revocations: int) -> dict[str, list[float]]:
    took: dict[str, list[float]] = {"bmc": [], "machine": [], "bulk": []}
    with tempfile.TemporaryDirectory(prefix="racklet-bench-id-") as name, _rack(Path(name)):
        state = Path(name)
        config = yaml.safe_load((state / "racklet.yaml").read_text())
        listeners = {
            "bmc": (urlsplit(config["units"][0]["bmc"]["url"]).port, "/redfish/v1/Systems"),
            "machine": (config["controller"]["machinePort"], "/boot/v1/metadata/1.root.json"),
            "bulk": (config["controller"]["bulkPort"], "/boot/v1/targets/none"),
        }
        ca = RackCA.load(state / "pki")
        for index in range(revocations):
            stolen = ca.issue("unit-1", role="unit/unit-1", server=False, client=True, days=1)
            key, crt = stolen.write(state, f"stolen-{index}")
            context = client_context(state / "pki" / "ca.crt", crt, key)
            for listener, (port, path) in listeners.items():
                deadline = time.monotonic() + 30  # the controller may still be starting
                while not _get(int(port), context, path):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{listener} never accepted the certificate")
                    time.sleep(0.2)
            cli = [sys.executable, "-m", "racklet.cli", "--config", str(state / "racklet.yaml")]
            subprocess.run([*cli, "pki", "revoke", str(crt)], check=True, capture_output=True)
            revoked = time.monotonic()
            pending = dict(listeners)
            while pending and time.monotonic() - revoked < 60:
                for listener, (port, path) in list(pending.items()):
                    if not _get(int(port), context, path):
                        took[listener].append(time.monotonic() - revoked)
                        del pending[listener]
                time.sleep(0.02)
            for listener in pending:
                took[listener].append(float("inf"))
    return took


# -- handshake cost ----------------------------------------------------------------------------


def _material(work: Path) -> dict[str, Path]:
    ca = RackCA.create(work / "pki", rack="bench")
    write_crl(ca, work / "pki")
    key, crt = ca.issue("racklet-controller", role="controller").write(work, "server")
    ckey, ccrt = ca.issue("unit-1", role="unit/unit-1", server=False, client=True).write(
        work, "client"
    )
    bmc = work / "bmc"
    bmc.mkdir()
    ca.issue("unit-1-bmc", role="bmc/unit-1").write(bmc, "server")
    write_accounts(bmc / "accounts.json", "admin", _PASSWORD)
    ca.issue("racklet-controller", role="controller", server=False, client=True).write(
        work, "controller"
    )
    return {
        "ca": work / "pki" / "ca.crt",
        "crl": work / "pki" / "crl.pem",
        "key": key,
        "crt": crt,
        "ckey": ckey,
        "ccrt": ccrt,
        "bmc": bmc,
        "controller_key": work / "controller.key",
        "controller_crt": work / "controller.crt",
    }


async def _handshakes(server: ssl.SSLContext, client: ssl.SSLContext, count: int) -> float:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        start = time.perf_counter()
        for _ in range(count):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname="localhost"
            )
            if await reader.read(2) != b"ok":
                raise RuntimeError("handshake refused")
            writer.close()
        return count / (time.perf_counter() - start)
    finally:
        listener.close()
        await listener.wait_closed()


def _handshake_cost(m: dict[str, Path], rounds: int, count: int) -> dict[str, list[float]]:
    before_server = server_context(m["crt"], m["key"], ca=m["ca"], require_client_cert=True)
    after_server = live_server_context(m["crt"], m["key"], ca=m["ca"], crl=m["crl"])
    before_client = client_context(m["ca"], m["ccrt"], m["ckey"])
    after_client = client_context(
        m["ca"], m["ccrt"], m["ckey"], expect=spiffe_id("bench", "controller")
    )
    found: dict[str, list[float]] = {"before": [], "after": []}
    for index in range(rounds):
        order = ["before", "after"] if index % 2 == 0 else ["after", "before"]
        for name in order:
            server, client = (
                (before_server, before_client) if name == "before" else (after_server, after_client)
            )
            found[name].append(asyncio.run(_handshakes(server, client, count)))
    return found


def _overheads(m: dict[str, Path]) -> dict[str, float]:
    """CPU microseconds each new mechanism adds per connection, measured in isolation (robust
    on a loaded machine, where whole-handshake rates swing by tens of percent)."""
    import timeit

    from racklet.net._identity import check_peer

    live = live_server_context(m["crt"], m["key"], ca=m["ca"], crl=m["crl"])
    generation = live._generation  # type: ignore[attr-defined]
    n = 20000
    dispatch = timeit.timeit(generation, number=n) / n

    def look() -> None:
        live.racklet_checked = 0.0  # type: ignore[attr-defined]
        generation()

    looks = timeit.timeit(look, number=2000) / 2000
    expect = spiffe_id("bench", "controller")

    async def decode() -> float:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"ok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(
            answer, "127.0.0.1", 0, ssl=server_context(m["crt"], m["key"])
        )
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(m["ca"]), server_hostname="localhost"
        )
        tls = writer.get_extra_info("ssl_object")
        took = timeit.timeit(lambda: check_peer(tls.getpeercert(), expect), number=5000) / 5000
        await reader.read(2)
        writer.close()
        server.close()
        await server.wait_closed()
        return took

    pin = asyncio.run(decode())
    build = timeit.timeit(
        lambda: live_server_context(m["crt"], m["key"], ca=m["ca"], crl=m["crl"]), number=100
    )
    return {
        "dispatch_us": dispatch * 1e6,
        "look_at_files_us": looks * 1e6,
        "pin_check_us": pin * 1e6,
        "new_generation_ms": build / 100 * 1e3,
    }


# -- Redfish GET through the controller's client ----------------------------------------------


async def _redfish_rate(url: str, m: dict[str, Path], pinned: bool, seconds: float) -> float:
    from racklet.redfish import RedfishClient

    client = RedfishClient(
        url,
        "admin",
        _PASSWORD,
        ca_bundle=m["ca"],
        client_cert=(m["controller_crt"], m["controller_key"]),
        expect=spiffe_id("bench", "bmc", "unit-1") if pinned else None,
    )
    done = 0
    try:
        await client.system("unit-1")  # connect (and log in) outside the measurement
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await client.system("unit-1")
                done += 1

        await asyncio.gather(*(worker() for _ in range(16)))
        return done / (time.perf_counter() - start)
    finally:
        await client.aclose()


def _redfish_cost(m: dict[str, Path], rounds: int, seconds: float) -> dict[str, list[float]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    argv = [sys.executable, "-m", "bench._bmc_target", "--dir", str(m["bmc"])]
    argv += ["--port", str(port), "--crl", str(m["crl"])]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=_HERE.parent)
    found: dict[str, list[float]] = {"unpinned": [], "pinned": []}
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("the bench BMC did not start")
        url = f"https://127.0.0.1:{port}"
        for index in range(rounds):
            order = [False, True] if index % 2 == 0 else [True, False]
            for pinned in order:
                rate = asyncio.run(_redfish_rate(url, m, pinned, seconds))
                found["pinned" if pinned else "unpinned"].append(rate)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench identity")
    parser.add_argument("--revocations", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--handshakes", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0, help="per Redfish round")
    parser.add_argument("--skip-rack", action="store_true", help="no revocation propagation")
    args = parser.parse_args(argv)
    summary: dict[str, object] = {}
    if not args.skip_rack:
        took = _propagation(args.revocations)
        summary["propagation_s"] = took
        for listener, times in took.items():
            shown = ", ".join(f"{t:.2f}" for t in times)
            print(f"revocation → refused at {listener:8} max {max(times):.2f} s (runs {shown})")
    with tempfile.TemporaryDirectory(prefix="racklet-bench-id-") as name:
        m = _material(Path(name))
        cost = _overheads(m)
        hs = _handshake_cost(m, args.rounds, args.handshakes)
        rf = _redfish_cost(m, args.rounds, args.seconds)
    summary["overheads"] = cost
    summary["handshakes_per_s"] = hs
    summary["redfish_get_per_s"] = rf
    print(
        f"per connection: dispatch {cost['dispatch_us']:.2f} us, pin check (decode + compare) "
        f"{cost['pin_check_us']:.1f} us; once a second a look at the files "
        f"{cost['look_at_files_us']:.1f} us; per change a new context "
        f"{cost['new_generation_ms']:.2f} ms"
    )
    b, a = statistics.median(hs["before"]), statistics.median(hs["after"])
    print(f"mutual-TLS handshakes/s: before {b:.0f}, after (CRL + pin) {a:.0f}: {a / b:.3f}x")
    u, p = statistics.median(rf["unpinned"]), statistics.median(rf["pinned"])
    print(f"Redfish GET/s (controller client): unpinned {u:.0f}, pinned {p:.0f}: {p / u:.3f}x")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
