"""Debian's Chromium driven by Playwright against a real ``racklet up`` rack.

The Playwright browser download is not reachable here, so the tests launch the ``chromium``
that ``scripts/test`` installs from Debian (found on ``PATH``); without it they are skipped
with that reason. One rack serves the whole module: starting one is the slow part.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningRack, start_rack, stop_rack

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (scripts/test installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="package")
def web_rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRack]:
    running = start_rack(tmp_path_factory.mktemp("web-rack"), "--units", "3", "--speed", "10")
    try:
        running.wait_for(
            lambda units: all(
                (u.get("status") or {}).get("phase") == "Running" for u in units.values()
            ),
            "every unit Running",
        )
        yield running
    finally:
        stop_rack(running)


@pytest.fixture(scope="package")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save screenshots; ``RACKLET_SCREENSHOTS=docs/img`` keeps the docs' ones."""
    wanted = os.environ.get("RACKLET_SCREENSHOTS")
    path = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


VIEWPORT = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}
LIVE_TIMEOUT_MS = 30_000


def _token(rack: RunningRack, role: str, name: str) -> str:
    out = rack.cli("token", "create", "--role", role, "--name", name, "--ttl", "2h").stdout
    return next(line for line in out.splitlines() if line.startswith("rkt_"))


@pytest.fixture(scope="package")
def tokens(web_rack: RunningRack) -> dict[str, str]:
    return {
        "admin": str(web_rack.config["api"]["token"]),
        "operator": _token(web_rack, "operator", "web-operator"),
        "viewer": _token(web_rack, "viewer", "web-viewer"),
    }


class Dashboard:
    """One browser context (its own cookies) on the rack's dashboard."""

    def __init__(self, browser: Any, rack: RunningRack, viewport: dict[str, int]) -> None:
        self.url = str(rack.config["api"]["url"])
        # the rack CA is not in Chromium's trust store; the connection is still TLS
        self.context = browser.new_context(ignore_https_errors=True, viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if "Content Security" in msg.text else None,
        )

    def open(self, hash_: str = "") -> Any:
        self.page.goto(f"{self.url}/{hash_}")
        return self.page

    def login(self, token: str) -> Any:
        page = self.open()
        page.fill("#login-token", token)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#tile-unit-1", timeout=LIVE_TIMEOUT_MS)
        return page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def dashboard(chromium: Any, web_rack: RunningRack) -> Iterator[Any]:
    made: list[Dashboard] = []

    def make(viewport: dict[str, int] = VIEWPORT) -> Dashboard:
        made.append(Dashboard(chromium, web_rack, viewport))
        return made[-1]

    yield make
    for one in made:
        assert one.errors == [], f"uncaught errors in the page: {one.errors}"
        one.close()
