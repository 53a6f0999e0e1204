"""Throughput and latency of ``GET /redfish/v1/Systems/{id}``: Racklet's BMC vs its peers.

Side by side in one run, each loaded by ``wrk`` with the same connections and duration:

- ``racklet``: the real BMC service on a twin board, in its own process, served by
  ``racklet.net.AppServer`` over TLS with a rack-CA certificate (``bench/_bmc_target.py``),
  with a Redfish session (``X-Auth-Token``).
- ``sushy``: OpenStack's Redfish emulator, ``sushy-emulator --fake``, given the same
  certificate (``--sushy-plain`` serves it over plain HTTP instead). It has no sessions, so
  the token header is sent and ignored.
- ``nginx``: one worker serving Racklet's own Systems document as a static file over the
  same certificate and the same TLS versions and ciphers: the ceiling for an answer this size.

Loopback only; every server is stopped at the end. Results are printed as a table plus the
ratios Racklet/sushy and Racklet/nginx.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from racklet.bmc import write_accounts
from racklet.pki import RackCA, write_crl

_HERE = Path(__file__).resolve().parent
_LUA = _HERE / "redfish_get.lua"
_PASSWORD = "bench-password-not-secret"
_RESULT = re.compile(r"RESULT (.*)")


@dataclass
class Target:
    name: str
    url: str
    """The Systems/{id} URL wrk loads."""
    token: str = ""


@dataclass
class Result:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_up(url: str, ca: Path | None, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during start-up")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, verify=str(ca) if ca else False, timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within 60 s")


@contextlib.contextmanager
def _process(argv: list[str], log: Path, **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _racklet(
    work: Path, stack: contextlib.ExitStack, uvloop: bool, crl: bool = False
) -> tuple[Target, bytes]:
    """``crl``: the BMC's listener follows the rack's CRL, as the twin's BMCs do."""
    bmc = work / "bmc"
    ca = work / "pki" / "ca.crt"
    port = _free_port()
    argv = [sys.executable, "-m", "bench._bmc_target", "--dir", str(bmc), "--port", str(port)]
    if not uvloop:
        argv.append("--asyncio")
    if crl:
        argv += ["--crl", str(work / "pki" / "crl.pem")]
    base = f"https://127.0.0.1:{port}"
    log = work / ("racklet-crl.log" if crl else "racklet.log")
    proc = stack.enter_context(_process(argv, log, cwd=_HERE.parent))
    _wait_up(base + "/redfish/v1", ca, proc, "the Racklet BMC")
    with httpx.Client(base_url=base, verify=str(ca)) as client:
        login = client.post(
            "/redfish/v1/SessionService/Sessions",
            json={"UserName": "admin", "Password": _PASSWORD},
        )
        login.raise_for_status()
        token = login.headers["X-Auth-Token"]
        document = client.get("/redfish/v1/Systems/unit-1", headers={"X-Auth-Token": token})
        document.raise_for_status()
    name = "racklet+crl" if crl else "racklet"
    return Target(name, base + "/redfish/v1/Systems/unit-1", token), document.content


def _sushy(work: Path, stack: contextlib.ExitStack, plain: bool) -> Target:
    exe = shutil.which("sushy-emulator") or str(Path(sys.executable).parent / "sushy-emulator")
    port = _free_port()
    argv = [exe, "--fake", "-i", "127.0.0.1", "-p", str(port)]
    tls = not plain
    if tls:
        argv += ["--ssl-certificate", str(work / "bmc" / "server.crt")]
        argv += ["--ssl-key", str(work / "bmc" / "server.key")]
    base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    ca = work / "pki" / "ca.crt" if tls else None
    proc = stack.enter_context(_process(argv, work / "sushy.log"))
    _wait_up(base + "/redfish/v1", ca, proc, "sushy-emulator")
    systems = httpx.get(base + "/redfish/v1/Systems", verify=str(ca) if ca else False).json()
    path = systems["Members"][0]["@odata.id"]
    return Target("sushy" if tls else "sushy (plain HTTP)", base + path, "unused-by-sushy")


_NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp;
  fastcgi_temp_path {work}/tmp; uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;
    location = /redfish/v1/Systems/unit-1 {{
      default_type application/json;
      alias {work}/system.json;
    }}
  }}
}}
"""


def _nginx(work: Path, stack: contextlib.ExitStack, document: bytes) -> Target:
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    root = work / "nginx"
    (root / "tmp").mkdir(parents=True)
    (root / "system.json").write_bytes(document)
    port = _free_port()
    conf = root / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(
            user="user root;\n" if os.geteuid() == 0 else "",
            work=root,
            port=port,
            cert=work / "bmc" / "server.crt",
            key=work / "bmc" / "server.key",
        )
    )
    argv = [exe, "-p", str(root), "-c", str(conf), "-e", str(root / "nginx-error.log")]
    proc = stack.enter_context(_process(argv, work / "nginx.log"))
    url = f"https://127.0.0.1:{port}/redfish/v1/Systems/unit-1"
    _wait_up(url, work / "pki" / "ca.crt", proc, "nginx")
    return Target("nginx", url)


def _wrk(target: Target, seconds: float, connections: int, threads: int) -> Result:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s"]
    argv += ["--timeout", "10s", "-s", str(_LUA), target.url]
    env = {**os.environ, "REDFISH_TOKEN": target.token}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    match = _RESULT.search(out)
    if match is None:
        raise RuntimeError(f"wrk printed no result for {target.name}:\n{out}")
    fields = {k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    return Result(
        requests_per_s=fields["requests"] / (fields["duration_us"] / 1e6),
        p50_ms=fields["p50_us"] / 1000,
        p99_ms=fields["p99_us"] / 1000,
        max_ms=fields["max_us"] / 1000,
        errors=fields["non2xx"] + fields["sockerr"],
    )


def _prepare(work: Path) -> None:
    ca = RackCA.create(work / "pki", rack="bench")
    write_crl(ca, work / "pki")
    bmc = work / "bmc"
    bmc.mkdir()
    ca.issue("unit-1-bmc", role="bmc/unit-1").write(bmc, "server")
    write_accounts(bmc / "accounts.json", "admin", _PASSWORD)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench redfish_get")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per target")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--targets", default="racklet,sushy,nginx")
    parser.add_argument("--sushy-plain", action="store_true", help="sushy over plain HTTP")
    parser.add_argument("--asyncio", action="store_true", help="Racklet on asyncio, not uvloop")
    args = parser.parse_args(argv)
    names = args.targets.split(",")
    if shutil.which("wrk") is None:
        raise SystemExit("redfish_get: wrk is not installed (Debian package wrk)")
    print(
        f"redfish_get: GET Systems/{{id}}, {args.connections} connections, wrk -t{args.threads}, "
        f"{args.duration:g} s per target (+{args.warmup:g} s warm-up), cpus={os.cpu_count()}"
    )
    with tempfile.TemporaryDirectory(prefix="racklet-bench-") as tmp, contextlib.ExitStack() as st:
        work = Path(tmp)
        _prepare(work)
        racklet, document = _racklet(work, st, uvloop=not args.asyncio)
        targets = {"racklet": racklet}
        if "sushy" in names:
            targets["sushy"] = _sushy(work, st, args.sushy_plain)
        if "racklet+crl" in names:
            targets["racklet+crl"] = _racklet(work, st, not args.asyncio, crl=True)[0]
        if "nginx" in names:
            targets["nginx"] = _nginx(work, st, document)
        loop = "asyncio" if args.asyncio else "uvloop"
        print(f"document: {len(document)} bytes; Racklet loop: {loop}")
        results: dict[str, Result] = {}
        print(
            f"{'target':<20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6}"
        )
        for name in names:
            target = targets[name]
            if args.warmup > 0:
                _wrk(target, args.warmup, args.connections, args.threads)
            r = results[name] = _wrk(target, args.duration, args.connections, args.threads)
            print(
                f"{target.name:<20} {r.requests_per_s:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
                f"{r.max_ms:>8.2f} {r.errors:>6}",
                flush=True,
            )
    if "racklet" in results and "racklet+crl" in results:
        ratio = results["racklet+crl"].requests_per_s / results["racklet"].requests_per_s
        print(f"racklet+crl/racklet throughput: {ratio:.3f}x (goal >= 0.95)")
    mine = results.get("racklet")
    if mine is not None:
        for peer in ("sushy", "nginx"):
            if peer in results:
                ratio = mine.requests_per_s / results[peer].requests_per_s
                print(f"racklet/{peer} throughput: {ratio:.2f}x")
        print(f"racklet p99: {mine.p99_ms:.2f} ms")


if __name__ == "__main__":
    main()
