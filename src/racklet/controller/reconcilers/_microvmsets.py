"""The MicroVMSet reconciler: keep ``replicas`` MicroVMs of the template, replace them rolling.

The set's VMs are ordinary MicroVMs (scheduled, leased, restarted and moved by the MicroVM
reconciler), each labelled with the set's name and its template's hash and carrying an owner
reference to the set (its ``uid``). This reconciler only creates and deletes them: what to do
is :func:`plan_members`, pure, as a Kubernetes Deployment decides over its ReplicaSets —

* VMs of the current template beyond ``replicas`` go (those not Running first, then the
  newest); too few and more are made, but never more than ``replicas + maxSurge`` VMs in all
  while old ones remain;
* an old VM that is not Running goes at once (it serves nothing); a Running one goes only
  while at least ``replicas - maxUnavailable`` VMs stay Running. With the defaults (surge 1,
  unavailable 0) a new VM is Running before an old one is deleted, one at a time.

Why not the rollout engine (``controller.rollout``): it updates a fixed set of units in place
(a power cycle into a channel's release, batches bounded by ``maxUnavailable``, a health
deadline and a rollback to the channel's previous release). A set's members are replaced,
not updated: the new VM is another object, made before the old one goes (a surge), and the
template's previous version needs no channel to return to — putting it back in the spec rolls
the set back the same way. The two share the vocabulary (``maxUnavailable``), not the loop.

Deleting a set deletes its VMs (here, when the set is gone; and the MicroVM reconciler
deletes a VM whose owner is gone or is another object of the same name, so a set deleted
while no controller ran leaves nothing behind). Level-triggered: the VMs in the store are the
whole record, so a pass that stopped half-way is finished by the next.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from racklet.api import (
    SET_LABEL,
    TEMPLATE_HASH_LABEL,
    Event,
    MicroVM,
    MicroVMSet,
    MicroVMSetStatus,
    MicroVMSpec,
    ObjectMeta,
    OwnerReference,
    VmTemplate,
    find_condition,
    set_condition,
)
from racklet.store import AlreadyExists, NotFound, Store

SET_KIND = "MicroVMSet"
PROGRESS_RECHECK_SECONDS = 2.0
"""While replacing or scaling, look again this often (a VM's change also wakes the set)."""
_INDEX = re.compile(r"-([0-9]+)$")


def template_hash(template: VmTemplate) -> str:
    """Six hex digits of the template's SHA-256: names a version of the template."""
    body = json.dumps(template.model_dump(by_alias=True, mode="json"), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:6]


@dataclass(frozen=True)
class Member:
    """One VM of a set as the plan sees it."""

    name: str
    ready: bool
    """Running (the agent reported it so, for its current attempt)."""
    index: int = 0


@dataclass(frozen=True)
class MemberPlan:
    create: int
    """How many VMs of the current template to make."""
    delete: tuple[tuple[str, str], ...]
    """VMs to delete, each with why (``ScaledDown``: above ``replicas``; ``Replaced``: of an
    old template)."""


def _going_first(members: Iterable[Member]) -> list[Member]:
    """Those not Running first, then the newest (highest index) first."""
    return sorted(members, key=lambda m: (m.ready, -m.index, m.name))


def plan_members(
    replicas: int,
    max_surge: int,
    max_unavailable: int,
    new: Sequence[Member],
    old: Sequence[Member],
) -> MemberPlan:
    """What to create and delete now, from the VMs of the current template (``new``) and of
    older ones (``old``). Pure: called again after every change until it plans nothing."""
    delete: list[tuple[str, str]] = []
    keep = list(new)
    if len(keep) > replicas:
        going = _going_first(keep)[: len(keep) - replicas]
        delete += [(m.name, "ScaledDown") for m in going]
        keep = [m for m in keep if m not in going]
    if not old:
        return MemberPlan(max(0, replicas - len(keep)), tuple(delete))
    total = len(keep) + len(old)
    create = max(0, min(replicas - len(keep), replicas + max_surge - total))
    room = sum(m.ready for m in (*keep, *old)) - (replicas - max_unavailable)
    for member in _going_first(old):
        if not member.ready:
            delete.append((member.name, "Replaced"))
        elif room > 0:
            delete.append((member.name, "Replaced"))
            room -= 1
    return MemberPlan(create, tuple(delete))


def _index(name: str) -> int:
    found = _INDEX.search(name)
    return int(found.group(1)) if found else 0


def owned_by(vm: MicroVM, vmset: MicroVMSet) -> bool:
    owner = vm.metadata.controller_owner(SET_KIND)
    return (
        owner is not None
        and owner.name == vmset.metadata.name
        and (owner.uid == vmset.metadata.uid)
    )


class MicroVMSetReconciler:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def reconcile(self, name: str) -> float | None:
        try:
            vmset = await self._store.get(MicroVMSet, name)
        except NotFound:
            await self._collect(name)
            return None
        events: list[Event] = []
        current = template_hash(vmset.spec.template)
        vms = [v for v in await self._store.list(MicroVM, {SET_LABEL: name}) if owned_by(v, vmset)]
        members = {
            v.metadata.name: Member(
                v.metadata.name, v.status.phase == "Running", _index(v.metadata.name)
            )
            for v in vms
        }
        new = [members[v.metadata.name] for v in vms if _hash_of(v) == current]
        old = [members[v.metadata.name] for v in vms if _hash_of(v) != current]
        status = vmset.status.model_copy(deep=True)
        if status.template_hash and status.template_hash != current and old:
            events.append(
                Event.about(
                    SET_KIND,
                    name,
                    "TemplateChanged",
                    f"template {status.template_hash} → {current}: replacing {len(old)} "
                    "VM(s) one at a time",
                )
            )
        rolling = vmset.spec.strategy.rolling_update
        plan = plan_members(
            vmset.spec.replicas, rolling.max_surge, rolling.max_unavailable, new, old
        )
        for vm_name, why in plan.delete:
            with contextlib.suppress(NotFound):
                await self._store.delete(MicroVM, vm_name)
            kept = "above replicas" if why == "ScaledDown" else "of an older template"
            events.append(Event.about(SET_KIND, name, why, f"deleted microvm {vm_name} ({kept})"))
            members.pop(vm_name)
        updated = {m.name for m in new} & set(members)
        used = {m.index for m in new}
        for _ in range(plan.create):
            index = next(i for i in range(len(used) + 1) if i not in used)
            used.add(index)
            made = await self._create(vmset, current, index)
            if made is not None:
                members[made] = Member(made, False, index)
                updated.add(made)
                events.append(Event.about(SET_KIND, name, "Created", f"created microvm {made}"))
        left = [v for v in vms if v.metadata.name in members]
        _summarize(vmset, status, current, list(members.values()), updated, left)
        if status != vmset.status:
            vmset.status = status
            await self._store.update_status(vmset)
        for event in events:
            await self._store.record_event(event)
        done = find_condition(status.conditions, "Progressing")
        if done is not None and done.reason == "NewReplicasAvailable":
            return None  # a VM's change wakes the set (and resync looks anyway)
        return PROGRESS_RECHECK_SECONDS

    async def _create(self, vmset: MicroVMSet, current: str, index: int) -> str | None:
        set_name = vmset.metadata.name
        template = vmset.spec.template
        vm = MicroVM(
            metadata=ObjectMeta(
                name=f"{set_name}-{current}-{index}",
                labels=dict(template.metadata.labels)
                | {SET_LABEL: set_name, TEMPLATE_HASH_LABEL: current},
                owner_references=[
                    OwnerReference(kind=SET_KIND, name=set_name, uid=vmset.metadata.uid)
                ],
            ),
            spec=MicroVMSpec.model_validate(template.spec.model_dump(by_alias=True)),
        )
        try:
            await self._store.create(vm)
        except AlreadyExists:
            return None  # another object took the name: the next pass picks another index
        return vm.metadata.name

    async def _collect(self, name: str) -> None:
        """The set is gone: delete the VMs it made (garbage collection by owner)."""
        for vm in await self._store.list(MicroVM, {SET_LABEL: name}):
            if vm.metadata.controller_owner(SET_KIND) is None:
                continue
            try:
                await self._store.delete(MicroVM, vm.metadata.name)
            except NotFound:
                continue


def _hash_of(vm: MicroVM) -> str:
    return vm.metadata.labels.get(TEMPLATE_HASH_LABEL, "")


def _summarize(
    vmset: MicroVMSet,
    status: MicroVMSetStatus,
    current: str,
    members: list[Member],
    updated: set[str],
    left: list[MicroVM],
) -> None:
    """Counts and the ``Available``, ``Progressing`` and ``Complete`` conditions, after this
    pass's acts."""
    spec, gen = vmset.spec, vmset.metadata.generation
    replicas = spec.replicas
    ready = sum(m.ready for m in members)
    status.replicas, status.ready_replicas = len(members), ready
    status.updated_replicas = len(updated)
    status.template_hash = current
    status.observed_generation = gen
    least = max(0, replicas - spec.strategy.rolling_update.max_unavailable)
    running = f"{ready} of {replicas} Running (at least {least} needed)"
    if ready >= least:
        set_condition(
            status.conditions, "Available", "True", "MinimumReplicasAvailable", running,
            observed_generation=gen,
        )  # fmt: skip
    else:
        set_condition(
            status.conditions, "Available", "False", "MinimumReplicasUnavailable", running,
            observed_generation=gen,
        )  # fmt: skip
    settled = (
        len(members) == replicas
        and len(updated) == replicas
        and all(m.ready for m in members if m.name in updated)
    )
    if settled:
        reason, message = "NewReplicasAvailable", f"{replicas} VM(s) of template {current} Running"
    else:
        reason = "ReplicasUpdating" if len(updated) < len(members) else "Scaling"
        message = (
            f"{len(updated)} of {replicas} VM(s) of template {current}, "
            f"{ready} Running, {len(members)} in all"
        )
        stuck = _unschedulable(left, current)
        if stuck:
            message += f"; {stuck}"
    set_condition(
        status.conditions, "Progressing", "True", reason, message, observed_generation=gen
    )
    # as a Rollout says it: ``racklet wait microvmset/NAME --for condition=Complete``
    set_condition(
        status.conditions, "Complete", "True" if settled else "False", reason, message,
        observed_generation=gen,
    )  # fmt: skip


def _unschedulable(vms: Iterable[MicroVM], current: str) -> str:
    """Why a VM of the current template waits for a place, if one does (the condition)."""
    for vm in vms:
        if _hash_of(vm) != current or vm.status.phase != "Pending":
            continue
        scheduled = find_condition(vm.status.conditions, "Scheduled")
        if scheduled is not None and scheduled.status == "False":
            return f"microvm {vm.metadata.name} is Pending: {scheduled.message}"
    return ""
