"""Energy you can trust: two simulated hours of load steps and a BMC restart, every unit's
joules within 0.5 % of the twin's ground truth, and counters that never go backwards."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from bench.energy_accuracy import energy_run

from racklet.bmc._state.energy import EnergyCount, EnergyFile
from racklet.log import ContextLogger


async def test_two_hours_with_load_steps_and_a_bmc_restart_match_the_truth(
    tmp_path: Path,
) -> None:
    run = await energy_run(tmp_path, units=5, hours=2.0, seed=3)
    assert run.simulated_seconds == pytest.approx(7200.0)
    for unit in run.units:
        assert unit.truth > 10_000.0, unit  # hours of a few watts: a real amount of energy
        assert abs(unit.error) <= 0.005, unit
        assert unit.before_restart > 0.0
        assert unit.after_restart >= unit.before_restart, unit
        assert not unit.decreased, unit
        saved = tmp_path / "bmc" / unit.unit / "energy.json"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert json.loads(saved.read_text())["energyJoules"] == pytest.approx(unit.measured)
    assert run.fans_truth > 0.0  # the rack fans are on the busbar too
    assert sum(u.truth for u in run.units) + run.fans_truth == pytest.approx(run.busbar_truth)


def test_an_unreadable_counter_starts_a_new_count_not_a_smaller_one(tmp_path: Path) -> None:
    log = ContextLogger(logging.getLogger("test"), {})
    energy = EnergyFile(tmp_path / "energy.json", log)
    fresh = energy.load()
    assert fresh.joules == 0.0
    energy.save(EnergyCount(1234.5, 1_700_000_000.0))
    assert energy.load() == EnergyCount(1234.5, 1_700_000_000.0)
    (tmp_path / "energy.json").write_text('{"energyJoules": "lots"')
    restarted = energy.load()
    assert restarted.joules == 0.0
    assert restarted.created > 1_700_000_000.0, "a new _created: scrapers see a reset"
    energy.save(EnergyCount(-5.0, 1_700_000_000.0))
    assert energy.load().joules == 0.0
