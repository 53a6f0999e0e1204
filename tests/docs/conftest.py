"""Collects the docs pages as tests: ``tests/docs/pages.txt`` stands for them.

pytest walks only ``tests/``; the pages live in ``docs/``. Collecting ``pages.txt`` yields
one Sybil file per page with a ``docs-test`` front matter, in README's reading order, so the
shared rack's state flows from page to page as it does for a reader. Pages that need no
shared rack (``none``, ``own``) run ahead in worker threads, beside the shared rack's pages;
their items replay, in order, what each example did (``RackPool.run_ahead``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sybil.integration.pytest import SybilFile, SybilItem

from tests.docs.harness import (
    AHEAD_KINDS,
    AHEAD_WORKERS,
    FrontMatter,
    RackPool,
    docs_sybil,
    reading_order,
    waits_in,
)

PAGES = Path(__file__).with_name("pages.txt")
SHARED_KINDS = ("starts", "shared")
AHEAD_TIMEOUT = 3600.0
"""pytest-timeout for an example of a page run ahead: it waits for the pages before it."""


class DocsItem(SybilItem):
    """One example of a page: evaluated here, or, for a page run ahead, replayed."""

    index: int

    def runtest(self) -> None:
        pool = self.example.namespace.get("docs_racks")
        run = pool.ahead.get(Path(self.example.path)) if isinstance(pool, RackPool) else None
        if run is None:
            super().runtest()
        else:
            run.replay(self.index)


class DocsPage(SybilFile):
    ahead: bool = False
    rack: str = "none"

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        for sybil in self.sybils:  # as SybilFile.collect, with items that know their index
            document = sybil.parse(self.path)
            self.documents.append(document)
            for index, example in enumerate(document.examples()):
                item = DocsItem.from_parent(self, sybil=sybil, example=example)
                item.index = index
                if self.ahead:
                    # its wait includes the pages queued before it in the worker threads;
                    # each command of theirs has its own timeout (harness.COMMAND_TIMEOUT)
                    item.add_marker(pytest.mark.timeout(AHEAD_TIMEOUT))
                yield item

    def setup(self) -> None:
        if not self.ahead:  # a page run ahead has its own document, set up and torn down there
            super().setup()

    def teardown(self) -> None:
        if not self.ahead:
            super().teardown()
        shared = [item.parent for item in self.session.items if _on_shared_rack(item)]
        if shared and shared[-1] is self:
            # the run's last page on the shared rack: the rack's idle CPU would only slow the
            # pages still running
            for document in self.documents:
                pool = document.namespace.get("docs_racks")
                if isinstance(pool, RackPool):
                    pool.stop_shared()


def _on_shared_rack(item: pytest.Item) -> bool:
    return isinstance(item.parent, DocsPage) and item.parent.rack in SHARED_KINDS


class DocsPages(pytest.File):
    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        sybil = docs_sybil()
        fronts = {path: FrontMatter.of(path.read_text(), str(path)) for path in reading_order()}
        pages = [(path, front) for path, front in fronts.items() if front is not None]
        # the shared rack's pages first, in reading order (its state flows from one to the
        # next), then the pages with racks of their own or none: the shared rack stops after
        # its last page instead of idling beside them (and they run beside it in workers)
        pages.sort(key=lambda page: page[1].rack not in SHARED_KINDS)
        for path, front in pages:
            page = DocsPage.from_parent(self, path=path, sybils=[sybil])
            # with no worker to run it ahead, a page is set up and torn down as any other
            # (its terminal, and the racks and servers its text starts, stopped at its end)
            page.ahead = AHEAD_WORKERS > 0 and front.rack in AHEAD_KINDS
            page.rack = front.rack
            yield page


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The docs tests that are not pages (the harness's, the site's) run before the replays of
    the pages run ahead: the test thread has nothing else to do while those pages finish."""
    ahead = {id(item) for item in items if isinstance(item, DocsItem) and _ahead(item)}
    if not ahead:
        return
    start = next(index for index, item in enumerate(items) if id(item) in ahead)
    end = 1 + max(
        index
        for index, item in enumerate(items)
        if id(item) in ahead or item.nodeid.startswith("tests/docs/")
    )
    segment = items[start:end]
    items[start:end] = [i for i in segment if id(i) not in ahead] + [
        i for i in segment if id(i) in ahead
    ]


def _ahead(item: pytest.Item) -> bool:
    return isinstance(item.parent, DocsPage) and item.parent.ahead


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path == PAGES:
        return DocsPages.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="package")  # the racks stop when the docs tests end, not the whole run
def docs_racks(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RackPool]:
    pool = RackPool(tmp_path_factory.mktemp("docs"))
    try:
        # the pages this run selected that need no shared rack start at once, in threads,
        # those that wait most first (the longest job first keeps the workers' ends close)
        ahead = dict.fromkeys(
            item.parent.path
            for item in request.session.items
            if isinstance(item, DocsItem) and isinstance(item.parent, DocsPage)
            if item.parent.ahead
        )
        pool.run_ahead(sorted(ahead, key=lambda path: -waits_in(path.read_text())))
        yield pool
    finally:
        pool.close()


class PageTimes:
    """Seconds per page (its examples' set-up, run and tear-down), in the run's summary: where
    the docs tests' time goes (issue 17's goal: all of them in under 3 minutes). A plugin, not
    this conftest's hooks: the pages' items live in ``docs/``, outside this directory."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.first: float | None = None
        self.last: float | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        pages = [part for part in report.nodeid.split("::") if part.endswith(".md")]
        if pages:
            self.seconds[pages[0]] = self.seconds.get(pages[0], 0.0) + report.duration
        if pages or report.nodeid.startswith("tests/docs/"):  # the pages, the site, the harness
            self.first = report.start if self.first is None else min(self.first, report.start)
            self.last = report.stop if self.last is None else max(self.last, report.stop)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.seconds:
            return
        terminalreporter.section("docs pages: seconds per page, slowest first")
        for page, seconds in sorted(self.seconds.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(f"{seconds:8.1f}  {page}")
        terminalreporter.write_line(f"{sum(self.seconds.values()):8.1f}  (every page)")
        if self.first is not None and self.last is not None:  # the measure of issue 17's goal
            wall = self.last - self.first
            terminalreporter.write_line(f"{wall:8.1f}  wall clock of the docs tests")
        if AHEAD_WORKERS > 0:
            terminalreporter.write_line(
                "(a page run ahead counts its wait for the pages before it: "
                "DOCS_TEST_WORKERS=0 times each page alone)"
            )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(PageTimes(), "docs-page-times")
