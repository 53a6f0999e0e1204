"""Boot server vs nginx: a 256 MB target to 8 concurrent mutual-TLS curl clients.

Three servers take turns in the same run, their order rotating per round: Racklet's bulk-target
server (``racklet.boot.BulkTargetServer``, blocking TLS writes from worker threads, as the
controller runs it for large targets), Racklet's asyncio boot server (``create_boot_app`` on
an ``AppServer`` with a mutual-TLS context, as the machine listener serves it, the fallback)
and nginx (Debian package, one worker, the same file, the same rack-CA certificate,
``ssl_verify_client on``). Each round starts 8 ``curl`` processes at once, each
downloading the whole file to /dev/null. Reported per server: throughput (bytes / wall time
until the last client finished) and the server's own CPU seconds per GB served (utime + stime
of its processes from /proc/PID/stat, before and after); then Racklet / nginx ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.boot_tools import (
    Tls,
    children,
    cpu_seconds,
    free_port,
    make_tls,
    parallel_curl,
    serve_until_sigterm,
    wait_listening,
)
from racklet.boot import BulkLimits

GB = 1e9
_NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;
        location /boot/v1/ {{ alias {repo}/; }}
    }}
}}
"""


def _write_target(repo: Path, size: int) -> str:
    """The target under both boot-server layouts (TUF ``targets/`` and the flat one)."""
    (repo / "targets").mkdir(parents=True)
    target = repo / "targets" / "bench-target.bin"
    with target.open("wb") as handle:
        for _ in range(size // (1 << 20)):
            handle.write(os.urandom(1 << 20))
    os.link(target, repo / "payload.bin")
    return "targets/bench-target.bin"


class _Server:
    def __init__(self, name: str, proc: subprocess.Popen[bytes], port: int) -> None:
        self.name, self.proc, self.port = name, proc, port

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT if self.name == "nginx" else signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _start_bulk(repo: Path, tls: Tls, chunk: int, *, crl: bool = False) -> _Server:
    """``crl``: with the controller's context (following the CRL, ``server_context_with_crl``)
    instead of a fixed one without a CRL (the bulk server before revocation reached it)."""
    port = free_port()
    args = [str(repo / "targets"), str(port), str(tls.server_cert), str(tls.server_key)]
    args += [str(tls.ca), str(chunk), str(tls.ca.parent / "crl.pem") if crl else "-"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.boot_server", "serve-bulk", *args], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        proc.kill()
        raise RuntimeError("the Racklet bulk-target server did not start")
    return _Server("bulk+crl" if crl else "bulk", proc, port)


async def _serve_bulk(argv: list[str]) -> None:
    """Run a :class:`BulkTargetServer` until SIGTERM (the ``serve-bulk`` subcommand)."""
    from racklet.boot import BulkTargetServer
    from racklet.net import server_context
    from racklet.pki import server_context_with_crl

    targets, port, cert, key, ca, chunk, crl = argv
    if crl == "-":
        context = server_context(Path(cert), Path(key), ca=Path(ca), require_client_cert=True)
    else:
        context = server_context_with_crl(Path(cert), Path(key), ca=Path(ca), crl=Path(crl))
    limits = BulkLimits(chunk_bytes=int(chunk))
    server = BulkTargetServer(Path(targets), context, port=int(port), limits=limits)
    await serve_until_sigterm(server)


def _start_racklet(tmp: Path, repo: Path, tls: Tls, uvloop: bool) -> _Server:
    port = free_port()
    args = [str(repo), str(port), str(tls.server_cert), str(tls.server_key), str(tls.ca)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.boot_serve", *args, *(["--uvloop"] if uvloop else [])],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        proc.kill()
        raise RuntimeError("the Racklet boot server did not start")
    return _Server("racklet", proc, port)


def _start_nginx(tmp: Path, repo: Path, tls: Tls) -> _Server:
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            tmp=tmp,
            port=port,
            cert=tls.server_cert,
            key=tls.server_key,
            ca=tls.ca,
            repo=repo,
        )
    )
    proc = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf)])
    wait_listening(port)
    return _Server("nginx", proc, port)


def _round(server: _Server, tls: Tls, path: str, clients: int) -> dict[str, float]:
    url = f"https://127.0.0.1:{server.port}/boot/v1/{path}"
    pids = server.pids()
    before = cpu_seconds(pids)
    wall, total = parallel_curl(tls, [url] * clients)
    cpu = cpu_seconds(pids) - before
    return {"gb_per_s": total / GB / wall, "cpu_s_per_gb": cpu / (total / GB), "wall_s": wall}


def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="racklet-bench-boot-") as name:
        tmp = Path(name)
        tls = make_tls(tmp / "tls")
        repo = tmp / "repo"
        path = _write_target(repo, args.size_mb << 20)
        servers: list[_Server] = []
        results: dict[str, list[dict[str, float]]] = {}
        try:
            servers.append(_start_bulk(repo, tls, args.chunk))
            if args.crl:
                servers.append(_start_bulk(repo, tls, args.chunk, crl=True))
            if not args.no_asyncio:
                servers.append(_start_racklet(tmp, repo, tls, args.uvloop))
            servers.append(_start_nginx(tmp, repo, tls))
            for server in servers:  # warm-up: page cache, TLS session setup, imports
                parallel_curl(tls, [f"https://127.0.0.1:{server.port}/boot/v1/{path}"])
                results[server.name] = []
            for index in range(args.rounds):
                shift = index % len(servers)  # each server goes first in some round
                for server in servers[shift:] + servers[:shift]:
                    results[server.name].append(_round(server, tls, path, args.clients))
        finally:
            for server in servers:
                server.stop()
    summary: dict[str, object] = {
        "size_mb": args.size_mb,
        "clients": args.clients,
        "uvloop": args.uvloop,
        "chunk": args.chunk,
    }
    for name, runs in results.items():
        summary[name] = {
            "gb_per_s": statistics.median(r["gb_per_s"] for r in runs),
            "cpu_s_per_gb": statistics.median(r["cpu_s_per_gb"] for r in runs),
            "runs": runs,
        }
    ng = summary["nginx"]
    assert isinstance(ng, dict)
    for name in results:
        entry = summary[name]
        assert isinstance(entry, dict)
        entry["throughput_ratio"] = entry["gb_per_s"] / ng["gb_per_s"]
        entry["cpu_per_gb_ratio"] = entry["cpu_s_per_gb"] / ng["cpu_s_per_gb"]
    return summary


_LABELS = {
    "bulk": "racklet bulk",
    "bulk+crl": "bulk + CRL",
    "racklet": "racklet asyncio",
    "nginx": "nginx",
}


def main(argv: list[str]) -> None:
    if argv[:1] == ["serve-bulk"]:
        asyncio.run(_serve_bulk(argv[1:]))
        return
    parser = argparse.ArgumentParser(prog="python -m bench boot_server")
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true", help="serve asyncio Racklet on uvloop")
    parser.add_argument(
        "--chunk", type=int, default=BulkLimits.chunk_bytes, help="bulk server read size"
    )
    parser.add_argument("--no-asyncio", action="store_true", help="skip the asyncio server")
    parser.add_argument(
        "--crl", action="store_true", help="also the bulk server following the CRL (the rack's)"
    )
    args = parser.parse_args(argv)
    summary = run(args)
    for name, label in _LABELS.items():
        entry = summary.get(name)
        if not isinstance(entry, dict):
            continue
        runs = ", ".join(f"{r['gb_per_s']:.2f}" for r in entry["runs"])
        print(
            f"{label:15} {entry['gb_per_s']:.2f} GB/s (runs {runs}), "
            f"{entry['cpu_s_per_gb']:.2f} CPU-s/GB; vs nginx: throughput "
            f"{entry['throughput_ratio']:.2f}x (goal >= 0.9), "
            f"CPU per GB {entry['cpu_per_gb_ratio']:.2f}x (goal <= 1.2)"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
