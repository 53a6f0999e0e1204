"""What ``bench rack_boot`` reports besides the medians: the spread, and which rounds to doubt."""

from __future__ import annotations

from bench.rack_boot import noisy_rounds, spread


def test_a_round_whose_peer_moved_more_than_30_percent_is_flagged() -> None:
    peers = [1.20, 1.25, 1.90, 1.22, 0.80]  # median 1.22: round 3 is +56 %, round 5 is -34 %
    assert noisy_rounds(peers) == [3, 5]


def test_rounds_within_30_percent_are_not_flagged() -> None:
    assert noisy_rounds([1.0, 1.29, 0.71, 1.0, 1.1]) == []


def test_spread_is_median_min_max() -> None:
    assert spread([2.9, 2.3, 5.0, 4.2, 2.7]) == (2.9, 2.3, 5.0)
