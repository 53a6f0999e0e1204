"""A real etcd for the high-availability tests (each test works under its own key prefix)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.etcd_server import EtcdServer, available


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    if not available():
        pytest.skip("etcd is not installed (Debian package etcd-server)")
    server = EtcdServer(Path(tmp_path_factory.mktemp("etcd")) / "data")
    server.start()
    yield server
    server.stop()
