"""The unit's hypervisor under real QEMU (TCG here): a VM runs its user data and ends with
its exit code, a tampered image is never started, a VM stopped mid-boot leaves no process,
a guest KVM does not boot is started again under TCG."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import racklet.vm._qemu as qemu
from racklet.node import _hypervisor
from racklet.node._hypervisor import Hypervisor, VmRequest

BOOT_TIMEOUT = 240.0  # TCG on a loaded 2-core machine; never a timed assertion


async def _finished(hypervisor: Hypervisor, name: str) -> None:
    vm = hypervisor.vms[name]
    try:
        async with asyncio.timeout(BOOT_TIMEOUT):
            await vm.wait()
    except TimeoutError:  # say where the guest stopped, for the next look
        tail = "\n".join(list(vm.state.console)[-15:])
        pytest.fail(f"{name} did not finish in {BOOT_TIMEOUT:g} s; console tail:\n{tail}")


async def test_a_vm_runs_its_command_and_reports_its_exit_code(
    vm_image: bytes, tmp_path: Path
) -> None:
    hypervisor = Hypervisor(tmp_path)
    phases: list[tuple[str, ...]] = []  # what each phase change showed: the agent beats then
    hypervisor.on_phase = lambda: phases.append(
        tuple(f"{n}:{vm.state.phase}" for n, vm in sorted(hypervisor.vms.items()))
    )
    try:
        ok = VmRequest("ok", 1, vcpus=1, memory_mib=128, user_data="echo hello-from-the-vm")
        bad = VmRequest("bad", 1, vcpus=1, memory_mib=128, user_data="echo failing; exit 7")
        await hypervisor.start(ok, vm_image)
        await hypervisor.start(bad, vm_image)
        await _finished(hypervisor, "ok")
        await _finished(hypervisor, "bad")
        good = hypervisor.vms["ok"].state
        assert (good.phase, good.exit_code) == ("Succeeded", 0)
        assert "hello-from-the-vm" in good.console
        failed = hypervisor.vms["bad"].state
        assert (failed.phase, failed.exit_code) == ("Failed", 7)
        assert "failing" in failed.console
        assert hypervisor.vms["ok"].cpu_seconds() > 0
        # Each VM's Running (its guest's init ran) and its end were told as they happened.
        told = {entry for shown in phases for entry in shown}
        assert {"ok:Running", "ok:Succeeded", "bad:Running", "bad:Failed"} <= told
        assert len(phases) == 4
    finally:
        await hypervisor.close()


async def test_a_tampered_image_is_never_started(vm_image: bytes, tmp_path: Path) -> None:
    tampered = bytearray(vm_image)
    tampered[len(tampered) // 2] ^= 0xFF
    hypervisor = Hypervisor(tmp_path)
    try:
        vm = await hypervisor.start(VmRequest("t", 1, 1, 128), bytes(tampered))
        assert vm.pid is None
        assert vm.state.phase == "Failed"
        assert "does not match its manifest digest" in vm.state.reason
    finally:
        await hypervisor.close()


async def test_a_vm_stopped_mid_boot_leaves_nothing_running(
    vm_image: bytes, tmp_path: Path
) -> None:
    hypervisor = Hypervisor(tmp_path)
    vm = await hypervisor.start(VmRequest("s", 1, 1, 128, user_data="sleep 600"), vm_image)
    pid = vm.pid
    assert pid is not None
    await hypervisor.close()
    assert vm.state.phase == "Failed" and vm.state.reason == "stopped"
    assert _gone(pid)
    assert _empty(tmp_path)


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _empty(path: Path) -> bool:
    return list(path.iterdir()) == []


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(autouse=True)
def _tcg() -> None:
    os.environ.setdefault("RACKLET_VM_ACCEL", "tcg")


async def test_a_guest_kvm_does_not_boot_is_started_again_under_tcg(
    vm_image: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where ``/dev/kvm`` opens yet a guest hangs under it (nested VMs: this host) or QEMU
    gives up (no KVM at all), the first VM falls back to TCG and KVM stays off after it.
    No KVM guest reaches its init in a millisecond, so this runs the fallback anywhere."""
    monkeypatch.setenv("RACKLET_VM_ACCEL", "kvm")  # as if /dev/kvm opened
    monkeypatch.setattr(qemu, "_kvm_broken", None)
    monkeypatch.setitem(_hypervisor.BOOT_SECONDS, "kvm", 0.001)
    hypervisor = Hypervisor(tmp_path)
    try:
        request = VmRequest("k", 1, vcpus=1, memory_mib=128, user_data="echo booted-anyway")
        await hypervisor.start(request, vm_image)
        await _finished(hypervisor, "k")
        state = hypervisor.vms["k"].state
        assert (state.phase, state.exit_code) == ("Succeeded", 0), list(state.console)
        assert any("starting it again under TCG" in line for line in state.console)
        assert "booted-anyway" in state.console
        assert qemu._kvm_broken is not None  # every later VM of this process: TCG
        monkeypatch.setenv("RACKLET_VM_ACCEL", "")
        assert qemu.accelerator() == "tcg"
    finally:
        await hypervisor.close()
