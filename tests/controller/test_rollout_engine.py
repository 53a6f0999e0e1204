"""The rollout engine's batch decision, from observed state alone (no store, no units): the
canary, then ``min(batchSize, maxUnavailable)``, shrunk by units already down."""

from __future__ import annotations

import pytest

from racklet.api import RolloutSpec
from racklet.controller.rollout._engine import batch_room


@pytest.mark.parametrize(
    ("canary", "batch", "max_unavailable", "started", "down", "room"),
    [
        (1, 3, 2, 0, 0, 1),  # the canary goes alone
        (1, 3, 2, 1, 0, 2),  # then min(batchSize, maxUnavailable)
        (0, 3, 2, 0, 0, 2),  # no canary: a full batch first
        (1, 2, 2, 1, 1, 1),  # one pending unit is down: one left to spend
        (1, 2, 2, 1, 2, 0),  # two down: nothing starts
        (2, 2, 1, 0, 0, 1),  # even the canary stays within maxUnavailable
    ],
)
def test_batch_room(
    canary: int, batch: int, max_unavailable: int, started: int, down: int, room: int
) -> None:
    spec = RolloutSpec(
        release="r", canary=canary, batch_size=batch, max_unavailable=max_unavailable
    )
    assert batch_room(spec, started, down) == room
