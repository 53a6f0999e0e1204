"""Which units of the rack can serve a payload to a booting unit (peer-to-peer distribution).

The boot server asks this when a unit is about to download a target (``/boot/v1/peers/``):
the answer is the units whose latest, still fresh heartbeat says they run that payload, in
a random order so that many booting units spread over them. Nothing new is stored: the
heartbeats are already kept in memory. ``Rack.spec.peerToPeer: false`` answers no peer, so
every unit downloads from the bulk server alone.
"""

from __future__ import annotations

import random

from racklet.api import Event, Rack
from racklet.boot import Peer
from racklet.boot.server import PeerFinder
from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRegistry
from racklet.store import NotFound, Store, StoreError

__all__ = ["PeerFinder", "peer_finder", "record_dropped_peers"]


async def record_dropped_peers(store: Store, body: HeartbeatBody) -> None:
    """A ``PeerDropped`` warning event on each unit the heartbeating unit's boot dropped as a
    payload peer (bad bytes, or it failed), naming who dropped it and why. The reporter's
    word only (it may lie about others: at most 16 events a heartbeat, and only warnings)."""
    for dropped in body.dropped_peers:
        if dropped.unit == body.unit:
            continue
        message = f"{body.unit} dropped it as a payload peer: {dropped.reason}"
        await store.record_event(
            Event.about("ComputeUnit", dropped.unit, "PeerDropped", message, type="Warning")
        )


def peer_finder(heartbeats: HeartbeatRegistry, store: Store, rack: str) -> PeerFinder:
    """The boot server's peer finder over ``heartbeats``, gated by the Rack's setting."""

    async def find(unit: str, sha256: str) -> list[Peer]:
        try:
            enabled = (await store.get(Rack, rack)).spec.peer_to_peer
        except NotFound:
            enabled = True  # the Rack is declared at start; until then the default holds
        except StoreError:
            return []
        if not enabled:
            return []
        peers = [
            Peer(beat.body.unit, beat.body.peer_url)
            for beat in heartbeats.fresh()
            if beat.body.unit != unit
            and beat.body.payload_sha256 == sha256
            and beat.body.peer_url is not None
        ]
        random.shuffle(peers)
        return peers

    return find
