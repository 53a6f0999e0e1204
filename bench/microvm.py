"""MicroVMs: apply-to-Running vs QEMU alone, the agent's memory per VM, rescheduling.

All in one process with real QEMU (TCG unless ``RACKLET_VM_ACCEL=kvm``), a real TUF
repository read from disk and the real scheduler, heartbeat exchange and agent code; what
is left out is the network (the heartbeat is called in process, every ``--beat`` seconds,
as a unit's agent would POST it) and the twin's power model. Three measurements:

- ``direct``: QEMU started on the image's kernel and initrd by hand, until the guest's init
  prints its first line (the limit); ``apply``: a MicroVM created in the store until its
  status says Running (scheduled, assigned through a heartbeat reply, image fetched and
  verified through TUF, QEMU started, Running reported through the next heartbeat), in
  alternating rounds; the ratio of the medians.
- the agent's memory per VM beyond QEMU's own: this process's RSS with ``--vms`` VMs running
  less before, divided by their number, next to one QEMU's RSS.
- rescheduling: the unit of a Running ``restartPolicy: Always`` VM is marked Off (what the
  unit reconciler writes once the BMC reports the power loss) until the VM is Running on the
  other unit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from tuf.api import exceptions as tuf_errors

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, MicroVM, ObjectMeta, Rack, RackSpec
from racklet.boot import BootLimits, TufRepository
from racklet.boot._tuf_api import FetcherInterface
from racklet.boot._tuf_client import fetch_target
from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRegistry, VmReport
from racklet.controller._workloads import exchange
from racklet.controller.reconcilers import MicroVMReconciler
from racklet.node._hypervisor import INIT_MARKER, Hypervisor
from racklet.node._workloads import Workloads
from racklet.store import MemoryStore
from racklet.vm import (
    accelerator,
    build_image,
    download_kernel_deb,
    find_qemu,
    qemu_command,
    read_image,
    user_data_archive,
)

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "vm"


class _DiskFetcher(FetcherInterface):
    def __init__(self, repo: Path) -> None:
        self._repo = repo

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            data = (self._repo / url.split("/boot/v1/", 1)[1]).read_bytes()
        except FileNotFoundError as exc:
            raise tuf_errors.DownloadHTTPError(f"404 for {url}", 404) from exc
        return iter([data])


async def _direct(image: bytes, workdir: Path) -> float:
    parsed = read_image(image)
    kernel, initrd = workdir / "vmlinuz", workdir / "initrd.img"
    kernel.write_bytes(parsed.kernel)
    initrd.write_bytes(parsed.initrd + user_data_archive("true"))
    argv = qemu_command(
        find_qemu(), kernel=kernel, initrd=initrd, vcpus=1, memory_mib=128, accel=accelerator()
    )
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    elapsed = float("nan")
    while line := await process.stdout.readline():
        if line.decode(errors="replace").startswith(INIT_MARKER):
            elapsed = time.perf_counter() - started
            break
    process.kill()
    await process.wait()
    return elapsed


class _Rig:
    """A store with two Running units, the reconciler and one agent per unit."""

    def __init__(self, repo: TufRepository, scratch: Path, beat: float) -> None:
        self.store = MemoryStore()
        self.beats = HeartbeatRegistry()
        self.reconciler = MicroVMReconciler(self.store, self.beats)
        self.repo, self.scratch, self.beat = repo, scratch, beat
        self.agents: dict[str, Workloads] = {}

    async def setup(self) -> None:
        await self.store.create(
            Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=1000.0))
        )
        for slot, name in enumerate(("unit-1", "unit-2"), start=1):
            await self.store.create(
                ComputeUnit(
                    metadata=ObjectMeta(name=name),
                    spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url="https://127.0.0.1:1")),
                )
            )
            await self.set_unit(name, "Running", "On")
            self.agents[name] = Workloads(Hypervisor(self.scratch), self._fetch(name))

    def _fetch(self, unit: str) -> Callable[[str], Awaitable[bytes]]:
        metadata = self.scratch / unit / "tuf"

        async def fetch(target: str) -> bytes:
            return await asyncio.to_thread(
                fetch_target,
                root=self.repo.root_bytes(),
                metadata_dir=metadata,
                base_url="https://127.0.0.1:1/boot/v1",
                target_path=target,
                fetcher=_DiskFetcher(self.repo.repo_dir),
                limits=BootLimits(),
                max_bytes=1 << 28,
            )

        return fetch

    async def set_unit(self, name: str, phase: str, power: str) -> None:
        unit = await self.store.get(ComputeUnit, name)
        unit.status.phase = phase  # type: ignore[assignment]
        unit.status.power_state = power
        await self.store.update_status(unit)

    async def heartbeat(self, unit: str) -> None:
        agent = self.agents[unit]
        reports = [VmReport.model_validate(r) for r in agent.reports()]
        body = HeartbeatBody(unit=unit, agent_url="https://127.0.0.1:1", os_version="1")
        self.beats.record(body)
        agent.apply(await exchange(self.store, unit, reports, body.agent_url))
        for report in reports:
            await self.reconciler.reconcile(report.name)

    async def until(self, name: str, unit: str) -> None:
        deadline = time.monotonic() + 300
        while True:
            vm = await self.store.get(MicroVM, name)
            if vm.status.phase == "Running" and vm.status.unit == unit:
                return
            if vm.status.phase in ("Failed", "Succeeded") or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: {vm.status.phase} on {vm.status.unit}: {vm.status}")
            await self.reconciler.reconcile(name)
            for agent_unit in self.agents:
                await self.heartbeat(agent_unit)
            await asyncio.sleep(self.beat)

    async def close(self) -> None:
        for agent in self.agents.values():
            await agent.close()


def _vm(name: str, policy: str = "Never") -> MicroVM:
    return MicroVM.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "image": {"name": "busybox", "version": "1.0.0"},
                "userData": "sleep 600",
                "restartPolicy": policy,
            },
        }
    )


async def _apply(rig: _Rig, name: str) -> float:
    started = time.perf_counter()
    await rig.store.create(_vm(name))
    await rig.reconciler.reconcile(name)
    unit = (await rig.store.get(MicroVM, name)).status.unit
    assert unit is not None
    await rig.until(name, unit)
    elapsed = time.perf_counter() - started
    await rig.store.delete(MicroVM, name)
    for agent_unit in rig.agents:
        await rig.heartbeat(agent_unit)  # the reply no longer names it: the agent stops it
    return elapsed


def _rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _memory(rig: _Rig, count: int) -> tuple[float, float]:
    before = _rss_kib()
    for n in range(count):
        await rig.store.create(_vm(f"mem-{n}"))
        await rig.reconciler.reconcile(f"mem-{n}")
    for n in range(count):
        vm = await rig.store.get(MicroVM, f"mem-{n}")
        assert vm.status.unit is not None
        await rig.until(f"mem-{n}", vm.status.unit)
    after = _rss_kib()
    qemu = [
        _rss_kib(vm.pid)
        for agent in rig.agents.values()
        for vm in agent._hypervisor.vms.values()
        if vm.pid is not None
    ]
    for n in range(count):
        await rig.store.delete(MicroVM, f"mem-{n}")
    for agent_unit in rig.agents:
        await rig.heartbeat(agent_unit)
    return (after - before) / count, statistics.median(qemu) if qemu else float("nan")


async def _reschedule(rig: _Rig) -> float:
    await rig.store.create(_vm("moving", "Always"))
    await rig.reconciler.reconcile("moving")
    first = (await rig.store.get(MicroVM, "moving")).status.unit
    assert first is not None
    await rig.until("moving", first)
    other = "unit-2" if first == "unit-1" else "unit-1"
    started = time.perf_counter()
    await rig.set_unit(first, "Off", "Off")
    await rig.agents[first].close()  # the power cut kills its VMs
    await rig.until("moving", other)
    return time.perf_counter() - started


async def run(rounds: int, vms: int, beat: float, directory: Path) -> None:
    image = await asyncio.to_thread(
        build_image, "busybox", "1.0.0", kernel=download_kernel_deb(CACHE)
    )
    repo = TufRepository.create(directory / "boot", channels=("stable", "vm-images"))
    repo.publish("vm-images", "busybox", "1.0.0", {"image.tar": image}, current=False)
    rig = _Rig(repo, directory, beat)
    await rig.setup()
    direct: list[float] = []
    applied: list[float] = []
    try:
        for n in range(rounds):
            direct.append(await _direct(image, directory))
            applied.append(await _apply(rig, f"bench-{n}"))
        per_vm, qemu = await _memory(rig, vms)
        moved = await _reschedule(rig)
    finally:
        await rig.close()
    d, a = statistics.median(direct), statistics.median(applied)
    print(f"accel {accelerator()}, {rounds} rounds, heartbeat every {beat:g} s (in process)")
    print(f"QEMU direct to init:      median {d:.2f} s  {[round(x, 2) for x in direct]}")
    print(f"MicroVM apply to Running: median {a:.2f} s  {[round(x, 2) for x in applied]}")
    print(f"ratio apply/direct:       {a / d:.2f}")
    print(f"agent memory per VM:      {per_vm:.0f} KiB beyond QEMU's own ({qemu:.0f} KiB RSS)")
    print(f"reschedule after power loss (unit marked Off to Running elsewhere): {moved:.2f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench microvm")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--vms", type=int, default=4)
    parser.add_argument("--beat", type=float, default=0.1, help="heartbeat period, seconds")
    args = parser.parse_args(argv)
    os.environ.setdefault("RACKLET_VM_ACCEL", "tcg")
    with tempfile.TemporaryDirectory(prefix="racklet-bench-vm-") as tmp:
        asyncio.run(run(args.rounds, args.vms, args.beat, Path(tmp)))
