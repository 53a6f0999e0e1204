"""Where a MicroVM runs: pure placement over the units' capacity, labels and the busbar.

A unit is a candidate when it is Running, matches the VM's ``nodeSelector``, runs no VM the
VM's ``antiAffinity`` selects, and has the VM's cores and memory free (its capacity less what
the OS reserves, less the VMs already assigned to it). Among candidates the least loaded one
wins (fewest assigned cores, then name), which spreads replicas. The busbar counts the VM's
expected draw (``vcpus`` × watts per vCPU) on top of what the rack draws now and what the
VMs assigned but not yet measured will draw. No I/O: the reconciler gathers the inputs.

When nothing fits, :class:`Unschedulable` says which resource is short, so a user reading the
condition knows whether to free memory, add a unit or raise the budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from racklet.api import TERMINAL_VM_PHASES, MicroVM, parse_selector

OS_RESERVED_MIB = 256
"""Memory the unit's OS and agent keep for themselves."""
DEFAULT_WATTS_PER_VCPU = 0.925
"""A Raspberry Pi 4's step per busy core: (6.4 W at full load − 2.7 W idle) / 4 cores."""


@dataclass(frozen=True)
class UnitView:
    """One unit as the scheduler sees it."""

    name: str
    running: bool
    cores: int
    memory_mib: int
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    unit: str


@dataclass(frozen=True)
class Unschedulable:
    reason: str  # a condition reason: InsufficientCPU, InsufficientMemory, BusbarBudget, ...
    message: str


def expected_watts(vm: MicroVM) -> float:
    per_vcpu = vm.spec.expected_watts_per_vcpu
    return vm.spec.vcpus * (DEFAULT_WATTS_PER_VCPU if per_vcpu is None else per_vcpu)


def holds(vm: MicroVM) -> bool:
    """Whether ``vm`` occupies its unit's capacity (assigned and not finished)."""
    return vm.status.unit is not None and vm.status.phase not in TERMINAL_VM_PHASES


def place(
    vm: MicroVM,
    units: Iterable[UnitView],
    vms: Iterable[MicroVM],
    *,
    budget_headroom_watts: float | None = None,
) -> Placement | Unschedulable:
    """The unit ``vm`` should run on, or why none can take it."""
    others = [o for o in vms if o.metadata.name != vm.metadata.name and holds(o)]
    selector = parse_selector(vm.spec.node_selector)
    anti = parse_selector(vm.spec.anti_affinity) if vm.spec.anti_affinity else None
    running = [u for u in units if u.running]
    if not running:
        return Unschedulable("NoRunningUnit", "no unit is Running")
    matching = [u for u in running if selector.matches(u.labels)]
    if not matching:
        return Unschedulable(
            "NodeSelector", f"no Running unit matches nodeSelector {vm.spec.node_selector!r}"
        )
    if anti is not None:
        taken = {o.status.unit for o in others if anti.matches(o.metadata.labels)}
        matching = [u for u in matching if u.name not in taken]
        if not matching:
            return Unschedulable(
                "AntiAffinity",
                f"every matching unit runs a VM selected by {vm.spec.anti_affinity!r}",
            )
    used_cores: dict[str, int] = {}
    used_mib: dict[str, int] = {}
    for other in others:
        assert other.status.unit is not None
        used_cores[other.status.unit] = used_cores.get(other.status.unit, 0) + other.spec.vcpus
        used_mib[other.status.unit] = used_mib.get(other.status.unit, 0) + other.spec.memory_mi_b
    want_cores, want_mib = vm.spec.vcpus, vm.spec.memory_mi_b
    free_cores = {u.name: u.cores - used_cores.get(u.name, 0) for u in matching}
    free_mib = {u.name: u.memory_mib - OS_RESERVED_MIB - used_mib.get(u.name, 0) for u in matching}
    fits_cpu = [u for u in matching if free_cores[u.name] >= want_cores]
    fits = [u for u in fits_cpu if free_mib[u.name] >= want_mib]
    if not fits:
        if not fits_cpu:
            most = max(free_cores.values())
            return Unschedulable(
                "InsufficientCPU",
                f"needs {want_cores} vCPUs; the most free on a matching unit is {most}",
            )
        most = max(free_mib[u.name] for u in fits_cpu)
        return Unschedulable(
            "InsufficientMemory",
            f"needs {want_mib} MiB; the most free on a unit with the cores is {most} MiB",
        )
    watts = expected_watts(vm)
    if budget_headroom_watts is not None and watts > budget_headroom_watts:
        return Unschedulable(
            "BusbarBudget",
            f"expected draw {watts:.2f} W exceeds the busbar's headroom of "
            f"{max(0.0, budget_headroom_watts):.2f} W",
        )
    best = min(fits, key=lambda u: (used_cores.get(u.name, 0), u.name))
    return Placement(best.name)
