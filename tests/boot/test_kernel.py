"""The verdicts Racklet adds on top of TUF: the release pointer and the agent config."""

from __future__ import annotations

import json

import pytest

from racklet.boot import ManifestError, PayloadError, parse_agent_config
from racklet.boot._manifest import parse_release_pointer

_GOOD = {
    "name": "racklet-os",
    "version": "0.2.0",
    "files": {"payload.bin": "stable/racklet-os/0.2.0/payload.bin"},
}


def test_a_good_pointer_names_its_payload_target() -> None:
    pointer = parse_release_pointer(json.dumps(_GOOD).encode(), "stable")
    assert (pointer.name, pointer.version) == ("racklet-os", "0.2.0")
    assert pointer.payload_target == "stable/racklet-os/0.2.0/payload.bin"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"name": "../etc"}, "invalid release"),
        ({"version": ""}, "invalid version"),
        ({"files": []}, "'files' map"),
        ({"files": {"payload.bin": "beta/racklet-os/0.2.0/payload.bin"}}, "outside its release"),
        ({"files": {"kernel": "stable/racklet-os/0.2.0/kernel"}}, "no payload.bin"),
    ],
)
def test_a_bad_pointer_is_refused(change: dict[str, object], fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        parse_release_pointer(json.dumps({**_GOOD, **change}).encode(), "stable")


def test_a_pointer_that_is_not_json_is_refused() -> None:
    with pytest.raises(ManifestError, match="not JSON"):
        parse_release_pointer(b"{", "stable")


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"nope",
        b'{"version": "1", "osBootSeconds": -1, "heartbeatIntervalSeconds": 1}',
        b'{"version": "1", "osBootSeconds": 1, "heartbeatIntervalSeconds": 0}',
        b'{"version": "1", "osBootSeconds": "1", "heartbeatIntervalSeconds": 1}',
        b'{"osBootSeconds": 1, "heartbeatIntervalSeconds": 1}',
    ],
)
def test_bad_agent_config_is_refused(data: bytes) -> None:
    with pytest.raises(PayloadError, match=r"agent\.json"):
        parse_agent_config(data)
