"""The docs site (`make docs`): strict MkDocs build, RFC PDFs, nothing fetched at run time.

The site is built once for the module exactly as `make docs` builds it (tools/docs/build.py:
the pinned Mermaid from the npm registry, `mkdocs build --strict`, the RFCs printed by Debian's
Chromium), into a temporary directory. Broken pages are built from a copy of the docs with one
bad link added, to show that strict mode and the source-link hook fail the build on them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tools" / "docs" / "build.py"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


class _Loader(yaml.SafeLoader):
    """mkdocs.yml names Python objects (`!!python/name:`); the test only reads its nav."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def _nav_pages() -> list[str]:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)
    pages: list[str] = []

    def walk(entry: Any) -> None:
        if isinstance(entry, str):
            pages.append(entry)
        elif isinstance(entry, list):
            for item in entry:
                walk(item)
        elif isinstance(entry, dict):
            for value in entry.values():
                walk(value)

    walk(config["nav"])
    return pages


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/test installs it)")
    site_dir = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, str(BUILD), "--site-dir", str(site_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    return site_dir


def test_every_page_of_the_nav_is_built_with_search(site: Path) -> None:
    pages = _nav_pages()
    assert "getting-started.md" in pages and "rfcs/0001-values-users-layers.md" in pages
    for page in pages:
        assert (site / page).with_suffix(".html").is_file(), page
    index = (site / "search" / "search_index.json").read_text()
    assert "busbar" in index and "PAC1921" in index


def test_every_rfc_is_printed_to_pdf_with_its_title(site: Path) -> None:
    from pypdf import PdfReader

    rfcs = sorted((ROOT / "docs" / "rfcs").glob("[0-9][0-9][0-9][0-9]-*.md"))
    assert len(rfcs) >= 8
    for rfc in rfcs:
        pdf = site / "rfcs" / "pdf" / f"{rfc.stem}.pdf"
        title = rfc.read_text().splitlines()[0].removeprefix("# ").strip()
        reader = PdfReader(pdf)
        text = " ".join((page.extract_text() or "") for page in reader.pages)
        assert re.sub(r"\s+", " ", title) in re.sub(r"\s+", " ", text), (pdf.name, title)
        assert len(reader.pages) >= 2, pdf.name  # the whole RFC, not only a title page


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.mark.parametrize("page", ["index.html", "rfcs/0004-declarative-control-plane.html"])
def test_pages_draw_their_diagrams_and_fetch_nothing_from_the_network(
    site: Path, browser: Any, page: str
) -> None:
    tab = browser.new_page()
    remote: list[str] = []
    tab.on("request", lambda request: remote.append(request.url))
    tab.goto((site / page).as_uri(), wait_until="load")
    tab.wait_for_function(
        "() => !document.querySelector('pre.mermaid') && document.querySelector('div.mermaid')"
        " && document.querySelector('div.mermaid').getBoundingClientRect().height > 50",
        timeout=30_000,
    )
    assert [url for url in remote if not url.startswith("file:")] == []


def _copy_of_the_docs(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copytree(ROOT / "tools", copy / "tools")
    for linked in ("src", "tests", "bench", "deploy", "README.md", "pyproject.toml"):
        if (ROOT / linked).exists():
            (copy / linked).symlink_to(ROOT / linked)
    return copy


@pytest.mark.parametrize(
    ("bad_link", "named"),
    [
        ("[the old page](no-such-page.md)", "no-such-page.md"),
        ("[moved code](../src/racklet/no_such_module.py)", "src/racklet/no_such_module.py"),
        ("[a section](cli.md#no-such-section)", "no-such-section"),
    ],
)
def test_a_broken_link_fails_the_strict_build(tmp_path: Path, bad_link: str, named: str) -> None:
    copy = _copy_of_the_docs(tmp_path)
    page = copy / "docs" / "faults.md"
    page.write_text(page.read_text() + f"\n\nSee {bad_link}.\n")
    stand_in = tmp_path / "mermaid.min.js"  # strict mode must fail before the diagrams matter
    stand_in.write_text("")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", RACKLET_MERMAID_JS=str(stand_in))
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert named in done.stderr and "faults.md" in done.stderr, done.stderr[-2000:]
