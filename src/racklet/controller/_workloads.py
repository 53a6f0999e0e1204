"""The MicroVM side of a heartbeat: take the unit's VM reports, answer with its assignments.

The channel is the heartbeat the agent already sends over mutual TLS (its certificate names
the unit, checked by the handler): the body carries what the agent's VMs are doing, the
reply the VMs assigned to that unit, each with its lease. A report counts only for the
attempt the controller assigned to that unit (a late report of a moved VM is stale and
dropped), so a VM's status always describes the one placement the controller stands by.
"""

from __future__ import annotations

import contextlib
from typing import Any

from racklet.api import TERMINAL_VM_PHASES, MicroVM, utcnow
from racklet.controller._heartbeats import VmReport
from racklet.controller.reconcilers._microvms import LEASE_SECONDS
from racklet.store import Conflict, Fenced, Store

VM_CHANNEL = "vm-images"
IMAGE_FILE = "image.tar"
AGENT_PHASES = frozenset({"Starting", "Running", "Succeeded", "Failed"})


def image_target(vm: MicroVM) -> str:
    return f"{VM_CHANNEL}/{vm.spec.image.name}/{vm.spec.image.version}/{IMAGE_FILE}"


def assignment(vm: MicroVM) -> dict[str, Any]:
    return {
        "name": vm.metadata.name,
        "attempt": vm.status.attempt,
        "image": image_target(vm),
        "vcpus": vm.spec.vcpus,
        "memoryMiB": vm.spec.memory_mi_b,
        "kernelArgs": vm.spec.kernel_args,
        "userData": vm.spec.user_data,
        "leaseSeconds": LEASE_SECONDS,
    }


async def exchange(
    store: Store, unit: str, reports: list[VmReport], agent_url: str
) -> list[dict[str, Any]]:
    """Apply ``unit``'s reports to its VMs' status; return what it should run."""
    vms = [v for v in await store.list(MicroVM) if v.status.unit == unit]
    by_name = {r.name: r for r in reports}
    for vm in vms:
        report = by_name.get(vm.metadata.name)
        if report is None or report.attempt != vm.status.attempt:
            continue
        if report.phase not in AGENT_PHASES or vm.status.phase in TERMINAL_VM_PHASES:
            continue
        status = vm.status.model_copy(deep=True)
        status.phase = report.phase  # type: ignore[assignment]
        status.exit_code, status.reason = report.exit_code, report.reason
        status.cpu_seconds = report.cpu_seconds
        status.console_url = f"{agent_url}/vms/{vm.metadata.name}/console"
        if report.phase == "Running" and status.started_time is None:
            status.started_time = utcnow()
        if report.phase in TERMINAL_VM_PHASES:
            status.finished_time = utcnow()
        if status != vm.status:
            vm.status = status
            # On a conflict the reconciler moved it meanwhile; a follower of an HA rack may
            # not write (Fenced): the leader gets the same report. Either way it comes again.
            with contextlib.suppress(Conflict, Fenced):
                await store.update_status(vm)
    return [
        assignment(v)
        for v in await store.list(MicroVM)
        if v.status.unit == unit and v.status.phase not in TERMINAL_VM_PHASES
    ]
