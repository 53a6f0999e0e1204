"""The MicroVM kind: a workload the rack runs on one of its units (``racklet.dev/v1alpha1``).

A MicroVM names a VM image that is a TUF target of the rack's ``vm-images`` channel (never a
path or a URL: the unit fetches and verifies it), its size, its user data and where it may
run. Its status is written only by the controller, from what the unit's agent reports.
What is refused here (sizes, selector syntax, user data over its limit) is refused at apply
time with the field named; whether a unit can hold it is the scheduler's business and shows
as a condition.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, field_validator

from racklet.api._meta import API_VERSION, Condition, Model, Object, ObjectMeta
from racklet.api._selector import parse_selector
from racklet.api.errors import InvalidSelector

MAX_USER_DATA_BYTES = 16 * 1024
"""User data rides on the guest's kernel command line side channel (an initramfs file): it is
for a command and a few settings, not for payloads."""
MAX_VCPUS = 64
MAX_MEMORY_MIB = 1024 * 1024

VmPhase = Literal["Pending", "Scheduled", "Starting", "Running", "Succeeded", "Failed"]
VM_PHASES: tuple[VmPhase, ...] = (
    "Pending",
    "Scheduled",
    "Starting",
    "Running",
    "Succeeded",
    "Failed",
)
TERMINAL_VM_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed"})
RestartPolicy = Literal["Always", "OnFailure", "Never"]
ImageName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=100)]
Version = Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+-]*$", max_length=64)]


class VmImageRef(Model):
    """A VM image: a TUF target ``vm-images/<name>/<version>`` of the rack's repository."""

    name: ImageName
    version: Version


class MicroVMSpec(Model):
    image: VmImageRef
    vcpus: Annotated[int, Field(ge=1, le=MAX_VCPUS)] = 1
    memory_mi_b: Annotated[int, Field(ge=16, le=MAX_MEMORY_MIB, alias="memoryMiB")] = 128
    kernel_args: Annotated[str, Field(max_length=1024)] = ""
    user_data: Annotated[str, Field(max_length=MAX_USER_DATA_BYTES)] = ""
    """A shell command line (or script) the guest's init runs; its exit code is the VM's."""
    restart_policy: RestartPolicy = "Never"
    node_selector: Annotated[str, Field(max_length=1024)] = ""
    """Label selector over ComputeUnits (``a=b,c!=d``): the VM runs only on a unit it matches."""
    anti_affinity: Annotated[str, Field(max_length=1024)] = ""
    """Label selector over MicroVMs: the VM never shares a unit with a running VM it matches."""
    power_priority: Annotated[int, Field(ge=0, le=1000)] = 100
    expected_watts_per_vcpu: Annotated[float, Field(ge=0, le=100)] | None = None
    """The VM's draw in the busbar ledger; by default the unit profile's per-core step."""

    @field_validator("node_selector", "anti_affinity")
    @classmethod
    def _selector(cls, value: str) -> str:
        try:
            parse_selector(value)
        except InvalidSelector as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("user_data")
    @classmethod
    def _user_data_bytes(cls, value: str) -> str:
        size = len(value.encode())
        if size > MAX_USER_DATA_BYTES:
            raise ValueError(f"user data is {size} bytes, at most {MAX_USER_DATA_BYTES}")
        return value


class MicroVMStatus(Model):
    phase: VmPhase = "Pending"
    unit: str | None = None
    """The unit the VM is assigned to (and, while Running, runs on)."""
    lease_until: dt.datetime | None = None
    """The unit may run the VM only until then unless its heartbeats renew the assignment;
    the controller reschedules only after it passed (fencing after a partition)."""
    attempt: int = 0
    """Bumped on every (re)placement: a unit's report about an older attempt is stale."""
    restarts: int = 0
    """How often the VM was started again after it ended (``Always``, ``OnFailure``)."""
    console_url: str | None = None
    exit_code: int | None = None
    reason: str = ""
    started_time: dt.datetime | None = None
    finished_time: dt.datetime | None = None
    cpu_seconds: float | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class MicroVM(Object):
    """A microVM: declared like a unit, scheduled onto one, run by its agent under QEMU."""

    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["MicroVM"] = "MicroVM"
    metadata: ObjectMeta
    spec: MicroVMSpec
    status: MicroVMStatus = Field(default_factory=MicroVMStatus)
