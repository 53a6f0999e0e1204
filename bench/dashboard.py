"""The dashboard in Debian's headless Chromium against a real ``racklet up`` rack.

Measures, on one rack:

* **change-to-pixel**: a power change written through the API (what ``racklet power`` sends)
  until the unit's tile shows it — the tile's power button (the desired state, the dashboard's
  own path: store → watch → SSE → DOM) and the tile's phase ``Off`` (the whole loop: the
  reconciler powers the BMC off and observes it); p50/p95 over ``--changes`` changes. Times
  are both on this host's wall clock: Python's ``time.time()`` before the write, the page's
  ``performance.timeOrigin + performance.now()`` in a MutationObserver.
* **first render**: a logged-in page load until every unit's tile is drawn, and the bytes
  transferred (the navigation and every resource, from the Resource Timing entries); with
  where the time goes along the chain (HTML, script, session, snapshot, tiles drawn: each
  step's end in ms after navigation start, medians) and the one-hour history of a unit.
* **controller CPU**: its user+system time over ``--window`` seconds with no dashboard open,
  then with ``--pages`` dashboards open (each its own session and SSE stream).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench._rack import start_rack

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STATIC = Path(__file__).parent.parent / "src" / "racklet" / "web" / "static"
WATCH_JS = """([key, name, want, field]) => {
  // Installs an observer and returns at once; the time lands in window.__seen[key].
  window.__seen = window.__seen || {};
  delete window.__seen[key];
  const check = () => {
    const tile = document.getElementById(`tile-${name}`);
    if (!tile) return false;
    const value = field === 'phase' ? tile.dataset.phase
      : (tile.querySelector('button') || {}).textContent;
    return value === want;
  };
  const observer = new MutationObserver(() => {
    if (check()) {
      observer.disconnect();
      window.__seen[key] = performance.timeOrigin + performance.now();
    }
  });
  const options = {subtree: true, childList: true, attributes: true};
  observer.observe(document.getElementById('view'), options);
}"""


CHAIN_JS = """() => {
  // Each step's end (ms after navigation start): the HTML, the script, the session and the
  // snapshot requests, the page's first render, and now (the benchmark saw every tile). And
  // per request where its time went: waiting for a connection (queue + TCP + TLS) and
  // waiting for the server's first byte (its time, plus the host's scheduling).
  const nav = performance.getEntriesByType('navigation')[0];
  const out = {html: nav.responseEnd, requests: 0, parts: {}};
  const part = (step, e) => {
    out.parts[step] = {connect: e.connectEnd - e.startTime,
      server: e.responseStart - e.requestStart, body: e.responseEnd - e.responseStart};
  };
  part('html', nav);
  for (const e of performance.getEntriesByType('resource')) {
    const path = new URL(e.name).pathname;
    const step = {'/app.js': 'app.js', '/vendor/uPlot.esm.js': 'uPlot', '/style.css': 'css',
      '/vendor/uPlot.min.css': 'uPlot.css', '/ui/v1/session': 'session',
      '/ui/v1/snapshot': 'snapshot'}[path];
    out.requests += 1;
    if (step) { out[step] = e.responseEnd; part(step, e); }
  }
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  if (paint) out.fcp = paint.startTime;
  const mark = performance.getEntriesByName('racklet-first-render')[0];
  if (mark) out.rendered = mark.startTime;  // the page's own mark: its first view in the DOM
  out.seen = performance.now();  // when the benchmark saw every tile (adds its polling)
  return out;
}"""
PEER = "/style.css"
"""The peer of a first render, loaded the same way in the same run: one small static file
from the same listener (a TLS connection and one request). Its time is what any page pays
on this host at this moment; the dashboard's time above it is its own."""


def _api(config: dict[str, Any]) -> httpx.Client:
    return httpx.Client(
        base_url=config["api"]["url"],
        verify=config["api"]["caBundle"],
        headers={"Authorization": f"Bearer {config['api']['token']}"},
        timeout=30,
    )


def _wait_running(api: httpx.Client, units: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            items = api.get("/api/v1/computeunits").json()["items"]
            if sum((i.get("status") or {}).get("phase") == "Running" for i in items) == units:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(1)
    raise RuntimeError(f"{units} units not Running within {timeout:.0f} s")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _controller_pid(up_pid: int) -> int:
    for child in Path(f"/proc/{up_pid}/task/{up_pid}/children").read_text().split():
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"racklet.controller" in argv:
            return int(child)
    raise RuntimeError("no controller process under racklet up")


def _login(browser: Any, url: str, token: str) -> Any:
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.goto(url + "/")
    page.fill("#login-token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#tile-unit-1", timeout=60_000)
    return page


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dashboard")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument(
        "--only", choices=("all", "first-render"), default="all", help="first-render: skip the rest"
    )
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("bench dashboard: Debian's chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        state = Path(tmp) / "rack"
        up = start_rack(state, args.units, args.speed)
        try:
            deadline = time.monotonic() + 300
            while not (state / "racklet.yaml").exists() and time.monotonic() < deadline:
                time.sleep(0.5)
            config = yaml.safe_load((state / "racklet.yaml").read_text())
            api = _api(config)
            _wait_running(api, args.units, 600)
            url, token = config["api"]["url"], config["api"]["token"]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
                page = _login(browser, url, token)
                _first_render(page, url, args.units, up.pid)
                if args.only == "first-render":
                    browser.close()
                    return
                _change_to_pixel(page, api, args.units, args.changes)
                _wait_running(api, args.units, 600)
                page.close()
                _cpu(browser, up.pid, url, token, args.pages, args.window)
                browser.close()
        finally:
            up.terminate()
            up.wait(60)


def _first_render(page: Any, url: str, units: int, up_pid: int) -> None:
    """Cold loads: each in a fresh browser context (empty cache) holding the same session.

    Besides wall time, the CPU the chain costs: the page's main thread (Chromium's own
    ``TaskDuration`` and ``ScriptDuration``, over the DevTools protocol) and the controller's
    user+system time across the load (it also runs its reconcilers meanwhile, so an upper
    bound); on a loaded host these say whether the wall time is work or waiting."""
    cookies = page.context.cookies()
    times, sizes, chains, page_cpu, script_cpu, server_cpu = [], [], [], [], [], []
    peers: list[float] = []
    controller = _controller_pid(up_pid)
    for _ in range(5):
        peers.append(_peer_load(page, url, cookies))
        context = page.context.browser.new_context(
            ignore_https_errors=True, viewport={"width": 1280, "height": 720}
        )
        context.add_cookies(cookies)
        cold = context.new_page()
        devtools = context.new_cdp_session(cold)
        devtools.send("Performance.enable")
        cpu_before = _cpu_seconds(controller)
        start = time.perf_counter()
        cold.goto(url + "/#/rack")
        cold.wait_for_selector(f"#tile-unit-{units}")
        times.append(time.perf_counter() - start)
        server_cpu.append(_cpu_seconds(controller) - cpu_before)
        chains.append(cold.evaluate(CHAIN_JS))
        sampled = devtools.send("Performance.getMetrics")["metrics"]
        metrics = {m["name"]: m["value"] for m in sampled}
        page_cpu.append(metrics.get("TaskDuration", 0.0))
        script_cpu.append(metrics.get("ScriptDuration", 0.0))
        sizes.append(
            cold.evaluate(
                "performance.getEntriesByType('navigation').concat("
                "performance.getEntriesByType('resource'))"
                ".reduce((s, e) => s + (e.transferSize || 0), 0)"
            )
        )
        context.close()
    files = [p for p in STATIC.rglob("*") if p.is_file() and not p.name.startswith("LICENSE")]
    raw = sum(p.stat().st_size for p in files)
    packed = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
    print(
        f"first render of the rack view ({units} units, cold cache): median "
        f"{statistics.median(times):.3f} s, max {max(times):.3f} s over 5 loads; transferred "
        f"{max(sizes) / 1024:.1f} KB with the snapshot (the static files: {raw / 1024:.1f} KB,"
        f" {packed / 1024:.1f} KB gzip -9, served gzipped)",
        flush=True,
    )
    print(
        f"  its peer in the same run (a cold load of {PEER} from the same listener): median "
        f"{statistics.median(peers):.3f} s, max {max(peers):.3f} s; the dashboard's own share:"
        f" {statistics.median(times) - statistics.median(peers):.3f} s",
        flush=True,
    )
    steps = ", ".join(
        f"{step} {statistics.median(c[step] for c in chains):.0f}"
        for step in chains[0]
        if step != "parts" and all(step in c for c in chains)
    )
    print(f"  where it goes (ms after navigation start, medians): {steps}", flush=True)
    parts = []
    for step in chains[0]["parts"]:
        if all(step in c["parts"] for c in chains):
            spent = {
                k: statistics.median(c["parts"][step][k] for c in chains)
                for k in ("connect", "server", "body")
            }
            parts.append(f"{step} {spent['connect']:.0f}/{spent['server']:.0f}/{spent['body']:.0f}")
    print(f"  per request, connection/server/body (ms, medians): {', '.join(parts)}", flush=True)
    print(
        f"  CPU of a load (medians): the page's main thread "
        f"{1000 * statistics.median(page_cpu):.0f} ms "
        f"(script {1000 * statistics.median(script_cpu):.0f} ms); the controller "
        f"{1000 * statistics.median(server_cpu):.0f} ms (with its reconcilers meanwhile)",
        flush=True,
    )


def _peer_load(page: Any, url: str, cookies: list[Any]) -> float:
    """One cold load of :data:`PEER`, as the first render's loads are made."""
    context = page.context.browser.new_context(
        ignore_https_errors=True, viewport={"width": 1280, "height": 720}
    )
    context.add_cookies(cookies)
    cold = context.new_page()
    start = time.perf_counter()
    cold.goto(url + PEER)
    spent = time.perf_counter() - start
    context.close()
    return spent


def _change_to_pixel(page: Any, api: httpx.Client, units: int, changes: int) -> None:
    desired, observed = [], []
    for i in range(changes):
        name = f"unit-{i % units + 1}"
        page.wait_for_selector(f"#tile-{name}[data-phase=Running]", timeout=300_000)
        page.evaluate(WATCH_JS, ["spec", name, "Power on", "button"])
        page.evaluate(WATCH_JS, ["phase", name, "Off", "phase"])
        sent = time.time() * 1000
        response = api.patch(f"/api/v1/computeunits/{name}", json={"spec": {"power": "Off"}})
        response.raise_for_status()
        page.wait_for_function("() => window.__seen.spec && window.__seen.phase", timeout=120_000)
        seen = page.evaluate("window.__seen")
        desired.append(seen["spec"] - sent)
        observed.append(seen["phase"] - sent)
        api.patch(f"/api/v1/computeunits/{name}", json={"spec": {"power": "On"}})
        page.wait_for_selector(f"#tile-{name} button:text('Power off')")
    print(
        f"change-to-pixel over {changes} changes: spec → tile button p50 "
        f"{_pct(desired, 0.5):.0f} ms, p95 {_pct(desired, 0.95):.0f} ms, max {max(desired):.0f} ms;"
        f" to the tile's phase Off p50 {_pct(observed, 0.5):.0f} ms, "
        f"p95 {_pct(observed, 0.95):.0f} ms, max {max(observed):.0f} ms",
        flush=True,
    )


def _cpu(browser: Any, up_pid: int, url: str, token: str, pages: int, window: float) -> None:
    controller = _controller_pid(up_pid)
    time.sleep(5)
    before = _cpu_seconds(controller)
    time.sleep(window)
    idle = (_cpu_seconds(controller) - before) / window
    opened = [_login(browser, url, token) for _ in range(pages)]
    time.sleep(5)
    before = _cpu_seconds(controller)
    time.sleep(window)
    busy = (_cpu_seconds(controller) - before) / window
    for page in opened:
        page.context.close()
    print(
        f"controller CPU over {window:.0f} s: {100 * idle:.1f} % of a core with no dashboard,"
        f" {100 * busy:.1f} % with {pages} open ({100 * (busy - idle):+.1f} %)",
        flush=True,
    )
