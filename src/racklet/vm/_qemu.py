"""QEMU's command line for a microVM, and whether KVM can be used.

``-M microvm`` with ``-kernel``/``-initrd`` and nothing else: no firmware, no PCI, no disk,
one serial console on stdout, ``-no-reboot`` so the guest's ``poweroff`` (or a panic) ends
the process. KVM when ``/dev/kvm`` opens for writing, TCG otherwise (in containers KVM can
exist and still fail: ``RACKLET_VM_ACCEL=tcg`` forces TCG).
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from racklet import children
from racklet.vm.errors import HypervisorError

QEMU_X86 = "qemu-system-x86_64"
BASE_KERNEL_ARGS = "console=ttyS0 reboot=t panic=-1 quiet"
TCG_KERNEL_ARGS = "tsc_early_khz=1000000 tsc=reliable"
"""Under TCG on a loaded host the kernel's PIT calibration of the TSC fails and the boot hangs
waiting for timer ticks; a stated TSC rate skips the calibration (the guest's clock is only
approximately right, which its one command does not mind)."""


def find_qemu() -> str:
    path = shutil.which(QEMU_X86)
    if path is None:
        raise HypervisorError(f"{QEMU_X86} not found: install Debian's qemu-system-x86")
    return path


_kvm_broken: str | None = None
"""Why KVM was found not to work on this host (set once a guest did not boot under it)."""


def accelerator() -> str:
    """``kvm`` when ``/dev/kvm`` opens for writing and no guest has failed to boot under it
    in this process, ``tcg`` otherwise; ``RACKLET_VM_ACCEL`` forces one."""
    forced = os.environ.get("RACKLET_VM_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return forced
    if _kvm_broken is not None:
        return "tcg"
    return "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"


def disable_kvm(reason: str) -> None:
    """KVM opened but did not run a guest (in nested or restricted VMs ``/dev/kvm`` can
    exist and a guest still hang at its first instructions): use TCG from now on."""
    global _kvm_broken
    _kvm_broken = reason


def qemu_command(
    qemu: str,
    *,
    kernel: Path,
    initrd: Path,
    vcpus: int,
    memory_mib: int,
    kernel_args: str = "",
    accel: str = "tcg",
) -> list[str]:
    """The argv of one microVM whose serial console is QEMU's stdout."""
    tcg = TCG_KERNEL_ARGS if accel == "tcg" else ""
    args = " ".join(part for part in (BASE_KERNEL_ARGS, tcg, kernel_args) if part)
    return [
        qemu,
        "-M",
        "microvm,pit=on,pic=on,rtc=on",
        "-accel",
        accel,
        "-cpu",
        "host" if accel == "kvm" else "max",
        "-smp",
        str(vcpus),
        "-m",
        str(memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        args,
    ]


def die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook: the kernel kills QEMU when the process that started it ends, even
    by SIGKILL (:func:`racklet.children.die_with_parent`, as ``racklet up`` arms for its
    children)."""
    return children.die_with_parent(signal.SIGKILL)
