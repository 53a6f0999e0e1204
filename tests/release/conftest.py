"""Fixtures for release tests: a real API (from the CLI tests) and a real TUF repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from racklet.boot import TufRepository, build_default_payload
from tests.cli.conftest import LiveApi, live  # noqa: F401  (the fixture, re-exported)


@pytest.fixture
def repo(live: LiveApi) -> TufRepository:  # noqa: F811
    """The rack's repository where ``racklet release`` looks for it: ``<stateDir>/boot``."""
    state = live.config_path.parent
    tuf = TufRepository.create(state / "boot")
    tuf.publish("stable", "racklet-os", "0.1.0", {"payload.bin": build_default_payload(8192)})
    return tuf


def payload_file(directory: Path, version: str, size: int = 8192) -> Path:
    """A unit OS payload of ``version``, as an OS build would hand it over."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "payload.bin"
    path.write_bytes(build_default_payload(size, version))
    return path
