"""A real etcd for the high-availability tests (each test works under its own key prefix)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.store.etcd_server import EtcdServer, running_etcd


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    yield from running_etcd(tmp_path_factory.mktemp("etcd") / "data")
