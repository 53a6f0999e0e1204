"""Collects the docs pages as tests: ``tests/docs/pages.txt`` stands for them.

pytest walks only ``tests/``; the pages live in ``docs/``. Collecting ``pages.txt`` yields
one Sybil file per page with a ``docs-test`` front matter, in README's reading order, so the
shared rack's state flows from page to page as it does for a reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sybil.integration.pytest import SybilFile

from tests.docs.harness import FrontMatter, RackPool, docs_sybil, reading_order

PAGES = Path(__file__).with_name("pages.txt")


class DocsPages(pytest.File):
    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        sybil = docs_sybil()
        for path in reading_order():
            if FrontMatter.of(path.read_text(), str(path)) is not None:
                yield SybilFile.from_parent(self, path=path, sybils=[sybil])


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path == PAGES:
        return DocsPages.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="package")  # the racks stop when the docs tests end, not the whole run
def docs_racks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RackPool]:
    pool = RackPool(tmp_path_factory.mktemp("docs"))
    try:
        yield pool
    finally:
        pool.close()
