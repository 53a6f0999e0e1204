"""Boot server vs nginx: a 256 MB target to 8 concurrent mutual-TLS curl clients.

Racklet's boot server (``create_boot_app`` on an ``AppServer`` with a mutual-TLS context, as
the controller's machine listener serves it) and nginx (Debian package, one worker, the same
file, the same rack-CA certificate, ``ssl_verify_client on``) take turns in the same run,
their order alternating per round. Each round starts 8 ``curl`` processes at once, each
downloading the whole file to /dev/null. Reported per server: throughput (bytes / wall time
until the last client finished) and the server's own CPU seconds per GB served (utime + stime
of its processes from /proc/PID/stat, before and after); then Racklet / nginx ratios.
"""

from __future__ import annotations

import argparse
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
    wait_listening,
)

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
        self.proc.send_signal(signal.SIGTERM if self.name == "racklet" else signal.SIGQUIT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


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


def run(size_mb: int, clients: int, rounds: int, uvloop: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="racklet-bench-boot-") as name:
        tmp = Path(name)
        tls = make_tls(tmp / "tls")
        repo = tmp / "repo"
        path = _write_target(repo, size_mb << 20)
        servers = [_start_racklet(tmp, repo, tls, uvloop), _start_nginx(tmp, repo, tls)]
        results: dict[str, list[dict[str, float]]] = {"racklet": [], "nginx": []}
        try:
            for server in servers:  # warm-up: page cache, TLS session setup, imports
                parallel_curl(tls, [f"https://127.0.0.1:{server.port}/boot/v1/{path}"])
            for index in range(rounds):
                order = servers if index % 2 == 0 else servers[::-1]
                for server in order:
                    results[server.name].append(_round(server, tls, path, clients))
        finally:
            for server in servers:
                server.stop()
    summary: dict[str, object] = {"size_mb": size_mb, "clients": clients, "uvloop": uvloop}
    for name, runs in results.items():
        summary[name] = {
            "gb_per_s": statistics.median(r["gb_per_s"] for r in runs),
            "cpu_s_per_gb": statistics.median(r["cpu_s_per_gb"] for r in runs),
            "runs": runs,
        }
    rk, ng = summary["racklet"], summary["nginx"]
    assert isinstance(rk, dict) and isinstance(ng, dict)
    summary["throughput_ratio"] = rk["gb_per_s"] / ng["gb_per_s"]
    summary["cpu_per_gb_ratio"] = rk["cpu_s_per_gb"] / ng["cpu_s_per_gb"]
    return summary


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench boot_server")
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true", help="serve Racklet on uvloop")
    args = parser.parse_args(argv)
    summary = run(args.size_mb, args.clients, args.rounds, args.uvloop)
    for name in ("racklet", "nginx"):
        entry = summary[name]
        assert isinstance(entry, dict)
        runs = ", ".join(f"{r['gb_per_s']:.2f}" for r in entry["runs"])
        print(
            f"{name:8} {entry['gb_per_s']:.2f} GB/s (runs {runs}), "
            f"{entry['cpu_s_per_gb']:.2f} CPU-s/GB"
        )
    print(
        f"racklet/nginx: throughput {summary['throughput_ratio']:.2f}x (goal >= 0.9), "
        f"CPU per GB {summary['cpu_per_gb_ratio']:.2f}x (goal <= 1.2)"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
