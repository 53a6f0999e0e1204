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
