"""The controller's side of peer-to-peer distribution: who may serve a payload to a unit.

Real parts: the heartbeat registry the machine listener fills and the in-memory store with
the Rack (tests/boot/test_p2p.py covers the boot server's route and the units' side).
"""

from __future__ import annotations

import pytest

from racklet.api import ObjectMeta, Rack, RackSpec
from racklet.boot import Peer
from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRegistry
from racklet.controller._p2p import peer_finder, record_dropped_peers
from racklet.store import MemoryStore

SHA_NEW, SHA_OLD = "a" * 64, "b" * 64


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _beat(unit: str, sha256: str) -> HeartbeatBody:
    return HeartbeatBody.model_validate(
        {
            "unit": unit,
            "agentUrl": "https://127.0.0.1:8999",
            "peerUrl": f"https://127.0.0.1:{9000 + int(unit.rsplit('-', 1)[1])}",
            "osVersion": "0.2.0",
            "payloadSha256": sha256,
            "heartbeatIntervalSeconds": 5,
        }
    )


async def test_peers_are_the_other_fresh_units_running_that_payload() -> None:
    store, clock = MemoryStore(), Clock()
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=100)))
    heartbeats = HeartbeatRegistry(clock)
    for unit, sha in (("unit-1", SHA_NEW), ("unit-2", SHA_NEW), ("unit-3", SHA_OLD)):
        heartbeats.record(_beat(unit, sha))
    clock.now += 6  # unit-4 heartbeats later; the others are still fresh (10 s)
    heartbeats.record(_beat("unit-4", SHA_NEW))
    find = peer_finder(heartbeats, store, "rack-1")

    found = await find("unit-2", SHA_NEW)
    assert sorted(found, key=lambda p: p.unit) == [
        Peer("unit-1", "https://127.0.0.1:9001"),
        Peer("unit-4", "https://127.0.0.1:9004"),
    ]
    clock.now += 6  # unit-1's heartbeat is 12 s old: stale, so it is no peer any more
    assert [p.unit for p in await find("unit-2", SHA_NEW)] == ["unit-4"]


async def test_the_rack_setting_turns_peers_off() -> None:
    store, clock = MemoryStore(), Clock()
    rack = await store.create(
        Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=100))
    )
    heartbeats = HeartbeatRegistry(clock)
    heartbeats.record(_beat("unit-1", SHA_NEW))
    find = peer_finder(heartbeats, store, "rack-1")
    assert [p.unit for p in await find("unit-2", SHA_NEW)] == ["unit-1"]
    rack.spec.peer_to_peer = False
    await store.update(rack)
    assert await find("unit-2", SHA_NEW) == []


def test_a_heartbeat_with_a_malformed_payload_hash_is_refused() -> None:
    body = _beat("unit-1", SHA_NEW).model_dump(by_alias=True)
    body["payloadSha256"] = "../../etc/passwd"
    with pytest.raises(ValueError, match="payloadSha256"):
        HeartbeatBody.model_validate(body)


async def test_a_dropped_peer_becomes_a_warning_event_on_that_unit() -> None:
    store = MemoryStore()
    body = HeartbeatBody.model_validate(
        _beat("unit-1", SHA_NEW).model_dump(by_alias=True)
        | {
            "droppedPeers": [
                {"unit": "unit-3", "reason": "served bad bytes (piece 5, bytes 327680-393215)"},
                {"unit": "unit-1", "reason": "a unit cannot blame itself"},
            ]
        }
    )
    await record_dropped_peers(store, body)
    (event,) = await store.events(kind="ComputeUnit")
    assert (event.involved_object.name, event.reason, event.type) == (
        "unit-3",
        "PeerDropped",
        "Warning",
    )
    assert event.message == (
        "unit-1 dropped it as a payload peer: served bad bytes (piece 5, bytes 327680-393215)"
    )
