"""The controller keeps Prometheus' file-SD targets current: a pulled unit's agent leaves,
its BMC stays; a new board's agent is found from its heartbeat; files change only when the
targets do, atomically, and only once ``racklet prometheus config`` made the directory."""

from __future__ import annotations

import json
from pathlib import Path

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.config import (
    ApiConfig,
    BmcConfig,
    ControllerConfig,
    RackConfig,
    RackSettings,
    UnitConfig,
)
from racklet.controller._prometheus_targets import PrometheusTargets, scrape_targets
from racklet.store import MemoryStore


def _config(tmp_path: Path) -> RackConfig:
    return RackConfig(
        stateDir=str(tmp_path),
        rack=RackSettings(units=2),
        api=ApiConfig(url="https://127.0.0.1:8443", caBundle=str(tmp_path / "ca.crt"), token="t"),
        controller=ControllerConfig(apiPort=8443, machinePort=8444),
        units=[
            UnitConfig(
                name=f"unit-{i}",
                slot=i,
                bmc=BmcConfig(url=f"https://127.0.0.1:900{i}", username="admin", password="p"),
                agentPort=910 + i,
            )
            for i in (1, 2)
        ],
    )


def _unit(name: str, slot: int, phase: str, agent_url: str | None = None) -> ComputeUnit:
    unit = ComputeUnit(
        metadata=ObjectMeta(name=name),
        spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url=f"https://127.0.0.1:900{slot}")),
    )
    unit.status.phase = phase  # type: ignore[assignment]
    unit.status.agent_url = agent_url
    return unit


def _agents(documents: dict[str, list[dict[str, object]]]) -> dict[str, list[str]]:
    return {g["labels"]["unit"]: g["targets"] for g in documents["agent"]}  # type: ignore[index]


def test_a_pulled_unit_loses_its_agent_target_and_a_new_board_gains_one(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert _agents(scrape_targets(config)) == {
        "unit-1": ["127.0.0.1:911"],
        "unit-2": ["127.0.0.1:912"],
    }
    units = [
        _unit("unit-1", 1, "Running"),
        _unit("unit-2", 2, "Absent"),
        _unit("unit-3", 3, "Running", agent_url="https://127.0.0.1:9999"),  # a new board
    ]
    documents = scrape_targets(config, units)
    assert _agents(documents) == {"unit-1": ["127.0.0.1:911"], "unit-3": ["127.0.0.1:9999"]}
    bmcs = [g["labels"]["unit"] for g in documents["bmc"]]  # type: ignore[index]
    assert bmcs == ["unit-1", "unit-2", "unit-3"], "a BMC stays in its tray and says Absent"


async def test_the_service_rewrites_only_what_changed_once_the_directory_exists(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    for unit in (_unit("unit-1", 1, "Running"), _unit("unit-2", 2, "Running")):
        await store.create(unit)
    service = PrometheusTargets(_config(tmp_path), store)
    await service.run_once()
    assert not service.directory.exists(), "nobody asked for a scrape configuration"

    service.directory.mkdir(parents=True)
    await service.run_once()
    agent = service.directory / "agent.json"
    assert set(_agents({"agent": json.loads(agent.read_text())})) == {"unit-1", "unit-2"}
    stamps = {p.name: p.stat().st_mtime_ns for p in service.directory.iterdir()}
    await service.run_once()
    assert {p.name: p.stat().st_mtime_ns for p in service.directory.iterdir()} == stamps

    pulled = await store.get(ComputeUnit, "unit-2")
    pulled.status.phase = "Absent"
    await store.update_status(pulled)
    await service.run_once()
    assert set(_agents({"agent": json.loads(agent.read_text())})) == {"unit-1"}
    assert (service.directory / "bmc.json").stat().st_mtime_ns == stamps["bmc.json"]
    assert not list(service.directory.glob("*.tmp*")), "no temp file left behind"
