"""The agent's MicroVMs end to end on one unit, with real QEMU and a real TUF repository:
an assignment is fetched verified and run; a tampered image is never started; a VM whose
lease is not renewed (a partition) is stopped; the unit's OS ending kills every VM."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client.openmetrics.exposition import generate_latest

from racklet.boot import BootLimits, TufRepository
from racklet.boot._tuf_client import fetch_target
from racklet.hw import UnitHost
from racklet.node._hypervisor import Hypervisor
from racklet.node._metrics import NodeMetrics, metrics_registry
from racklet.node._workloads import Workloads
from tests.ab.rig import DiskFetcher

TARGET = "vm-images/busybox/1.0.0/image.tar"
BOOT_TIMEOUT = 240.0
OS_LOAD = 0.05


class _Host:
    """Enough of a unit for its metrics collector."""

    def temperature_celsius(self) -> float:
        return 40.0

    def cpu_load(self) -> float:
        return 0.0

    class clock:
        @staticmethod
        def monotonic() -> float:
            return 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _tcg() -> None:
    os.environ.setdefault("RACKLET_VM_ACCEL", "tcg")


def _published(tmp_path: Path, image: bytes) -> TufRepository:
    repo = TufRepository.create(tmp_path / "boot", channels=("stable", "vm-images"))
    repo.publish("vm-images", "busybox", "1.0.0", {"image.tar": image}, current=False)
    return repo


def _workloads(
    repo: TufRepository,
    tmp_path: Path,
    clock: Clock,
    on_load: Callable[[float], None] | None = None,
    base_load: Callable[[], float] | None = None,
) -> Workloads:
    async def fetch(target: str) -> bytes:
        return await asyncio.to_thread(
            fetch_target,
            root=repo.root_bytes(),
            metadata_dir=tmp_path / "unit" / "tuf-vm",
            base_url="https://127.0.0.1:1/boot/v1",
            target_path=target,
            fetcher=DiskFetcher(repo.repo_dir),
            limits=BootLimits(),
            max_bytes=256 * 1024 * 1024,
        )

    return Workloads(
        Hypervisor(tmp_path / "vms"), fetch, clock=clock, on_load=on_load, base_load=base_load
    )


def _assignment(name: str, user_data: str, attempt: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "attempt": attempt,
        "image": TARGET,
        "vcpus": 1,
        "memoryMiB": 128,
        "kernelArgs": "",
        "userData": user_data,
        "leaseSeconds": 15.0,
    }


async def _until(workloads: Workloads, name: str, phases: set[str]) -> dict[str, object]:
    try:
        async with asyncio.timeout(BOOT_TIMEOUT):
            while True:
                for report in workloads.reports():
                    if report["name"] == name and report["phase"] in phases:
                        return report
                await asyncio.sleep(0.1)
    except TimeoutError:  # say where the guest stopped, for the next look
        tail = "\n".join((workloads.console(name) or [])[-15:])
        pytest.fail(f"{name} not {phases} in {BOOT_TIMEOUT:g} s; console tail:\n{tail}")


async def test_an_assigned_vm_runs_from_a_verified_image(vm_image: bytes, tmp_path: Path) -> None:
    (tmp_path / "vms").mkdir()
    repo = await asyncio.to_thread(_published, tmp_path, vm_image)
    workloads = _workloads(repo, tmp_path, Clock())
    try:
        workloads.apply([_assignment("hello", "echo console-says-hi")])
        report = await _until(workloads, "hello", {"Succeeded", "Failed"})
        assert (report["phase"], report["exitCode"], report["attempt"]) == ("Succeeded", 0, 1)
        assert "console-says-hi" in (workloads.console("hello") or [])
        metrics = NodeMetrics(cast(UnitHost, _Host()), "unit-1", "1.0", 0.0)
        metrics.vms = workloads.reports
        text = generate_latest(metrics_registry(metrics)).decode()  # type: ignore[no-untyped-call]
        assert 'racklet_vm_phase{phase="Succeeded",unit="unit-1",vm="hello"} 1.0' in text
        assert 'racklet_vm_cpu_seconds_total{unit="unit-1",vm="hello"}' in text
        # deleted while it boots: the next reply no longer names it; nothing is left running
        workloads.apply([_assignment("slow", "sleep 600")])
        ended = workloads.console_state("hello")  # no longer assigned: its console stays
        assert ended is not None and "console-says-hi" in ended.lines_from(0)[1]
        await _until(workloads, "slow", {"Starting", "Running"})
        workloads.apply([])
        async with asyncio.timeout(60):
            while workloads.reports():
                await workloads.expire()
                await asyncio.sleep(0.1)
        assert not any((tmp_path / "vms").iterdir())
    finally:
        await workloads.close()


async def test_a_tampered_image_is_never_started(vm_image: bytes, tmp_path: Path) -> None:
    (tmp_path / "vms").mkdir()
    repo = await asyncio.to_thread(_published, tmp_path, vm_image)
    (stored,) = (repo.targets_dir / "vm-images/busybox/1.0.0").glob("*.image.tar")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    workloads = _workloads(repo, tmp_path, Clock())
    try:
        workloads.apply([_assignment("evil", "echo pwned")])
        report = await _until(workloads, "evil", {"Failed"})
        assert "hash mismatch" in str(report["reason"])
        assert workloads.console("evil") is None  # no QEMU was ever started
    finally:
        await workloads.close()


async def test_an_unrenewed_lease_stops_the_vm_and_close_kills_the_rest(
    vm_image: bytes, tmp_path: Path
) -> None:
    (tmp_path / "vms").mkdir()
    repo = await asyncio.to_thread(_published, tmp_path, vm_image)
    clock = Clock()
    hypervisor_dir = tmp_path / "vms"
    workloads = _workloads(repo, tmp_path, clock)
    try:
        workloads.apply([_assignment("a", "sleep 600"), _assignment("b", "sleep 600")])
        await _until(workloads, "a", {"Running"})
        await _until(workloads, "b", {"Running"})
        clock.now = 10.0  # heartbeats still answered: the lease holds
        await workloads.expire()
        assert {r["name"] for r in workloads.reports()} == {"a", "b"}
        workloads.apply([_assignment("a", "sleep 600"), _assignment("b", "sleep 600")])
        # a partition: no reply renews the leases; once they ran out the VMs are stopped
        clock.now = 10.0 + 15.0 + 0.5
        async with asyncio.timeout(60):
            while workloads.reports():
                await workloads.expire()
                await asyncio.sleep(0.1)
        assert not any(hypervisor_dir.iterdir())
        workloads.apply([_assignment("c", "sleep 600")])
        await _until(workloads, "c", {"Running"})
    finally:
        await workloads.close()
    assert workloads.reports() == []
    assert not any(hypervisor_dir.iterdir())


async def test_a_spinning_vm_is_the_units_load(vm_image: bytes, tmp_path: Path) -> None:
    """Compute becomes watts: the QEMU process's CPU time, over the unit's 4 cores, on top
    of the OS's own load, is the load the twin's power curve follows; the OS's own load
    again once the VM is gone."""
    (tmp_path / "vms").mkdir()
    repo = await asyncio.to_thread(_published, tmp_path, vm_image)
    loads: list[float] = []
    workloads = _workloads(repo, tmp_path, Clock(), on_load=loads.append, base_load=lambda: OS_LOAD)
    try:
        workloads.apply([_assignment("spin", "while :; do :; done")])
        await _until(workloads, "spin", {"Running"})
        loads.clear()
        for _ in range(20):
            await workloads.expire()
            await asyncio.sleep(0.1)
        # one busy vCPU of 4 cores: up to 0.25 more (less on a host whose cores are busy)
        assert loads and max(loads) > OS_LOAD, loads
        assert min(loads) >= OS_LOAD, loads  # the VM adds to the OS's load
        assert max(loads) <= OS_LOAD + 0.5, loads  # never more than one vCPU could use (+ QEMU)
        workloads.apply([])
        async with asyncio.timeout(60):
            while workloads.reports():
                await workloads.expire()
                await asyncio.sleep(0.1)
        await workloads.expire()
        assert loads[-1] == OS_LOAD
    finally:
        await workloads.close()


async def test_images_named_ahead_of_time_are_held_verified(tmp_path: Path) -> None:
    """The controller names images of VMs that may move here; the agent fetches them in the
    background through its TUF fetch into its image store, so the start of such a VM finds
    the signed bytes there (checked against fresh metadata) and downloads nothing."""
    from racklet.node._workloads import ImageStore
    from racklet.vm import pack_image

    image = pack_image("busybox", "1.0.0", b"k" * 5000, b"i" * 5000)
    repo = _published(tmp_path, image)
    images = ImageStore(tmp_path / "unit" / "vm-images")

    def fetch_and_keep(target: str) -> bytes:
        data = fetch_target(
            root=repo.root_bytes(),
            metadata_dir=tmp_path / "unit" / "tuf-vm",
            base_url="https://127.0.0.1:1/boot/v1",
            target_path=target,
            fetcher=DiskFetcher(repo.repo_dir),
            limits=BootLimits(),
            max_bytes=256 * 1024 * 1024,
            held=images.held,
        )
        images.keep(data)
        return data

    async def fetch(target: str) -> bytes:
        return await asyncio.to_thread(fetch_and_keep, target)

    workloads = Workloads(Hypervisor(tmp_path / "vms"), fetch, clock=Clock())
    try:
        workloads.prefetch([TARGET, "vm-images/busybox/9.9.9/image.tar"])
        async with asyncio.timeout(60):
            await asyncio.gather(*workloads._prefetching.values())
        (kept,) = (tmp_path / "unit" / "vm-images").iterdir()
        assert kept.stat().st_mode & 0o777 == 0o600
        for stored in (repo.targets_dir / "vm-images/busybox/1.0.0").glob("*.image.tar"):
            stored.unlink()  # from now on only the held copy can serve
        assert await fetch(TARGET) == image  # served, verified, without a download
        calls = len(list((tmp_path / "unit" / "vm-images").iterdir()))
        workloads.prefetch([TARGET])  # held already: not fetched again
        assert not workloads._prefetching and calls == 1
    finally:
        await workloads.close()
