"""The MicroVMSet kind: ``replicas`` MicroVMs of one template, replaced one at a time.

A MicroVMSet is to MicroVMs what a Kubernetes Deployment is to Pods: the controller keeps
``spec.replicas`` MicroVMs made from ``spec.template`` (each with an owner reference to the
set, so deleting the set deletes them), and when the template changes (a new image, say) it
replaces them under ``spec.strategy`` (``maxSurge`` extra VMs at most, ``maxUnavailable``
fewer Running ones at most; 1 and 0 by default: a new VM Running before an old one goes).
What is refused here is refused at apply time with the field named: the template is checked
by the MicroVM's own rules, and a VM of a set runs for good (``restartPolicy: Always``, as a
Deployment's pods do), so an ended VM is restarted by its own reconciler, never replaced.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from racklet.api._meta import API_VERSION, Condition, Model, Object
from racklet.api._microvm import MicroVMSpec

MAX_REPLICAS = 256
MAX_SET_NAME = 52
"""A set's VMs are named ``<set>-<hash, 6>-<n, up to 3 digits>`` within a 63-character label."""
SET_LABEL = "racklet.dev/microvmset"
"""On every VM of a set: the set's name (``antiAffinity: racklet.dev/microvmset=web``
keeps a set's replicas on distinct units)."""
TEMPLATE_HASH_LABEL = "racklet.dev/template-hash"
"""On every VM of a set: which version of the template made it."""


class VmTemplateSpec(MicroVMSpec):
    """A MicroVM spec whose VM runs until the set lets it go."""

    restart_policy: Literal["Always"] = "Always"  # type: ignore[assignment]


class VmTemplateMeta(Model):
    labels: dict[str, str] = Field(default_factory=dict)


class VmTemplate(Model):
    metadata: VmTemplateMeta = Field(default_factory=VmTemplateMeta)
    spec: VmTemplateSpec


class RollingUpdate(Model):
    max_surge: Annotated[int, Field(ge=0, le=MAX_REPLICAS)] = 1
    """How many VMs beyond ``replicas`` may exist while replacing."""
    max_unavailable: Annotated[int, Field(ge=0, le=MAX_REPLICAS)] = 0
    """How many fewer than ``replicas`` may be Running while replacing."""

    @model_validator(mode="after")
    def _moves(self) -> RollingUpdate:
        if self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError("maxSurge and maxUnavailable cannot both be 0: nothing could move")
        return self


class MicroVMSetStrategy(Model):
    rolling_update: RollingUpdate = Field(default_factory=RollingUpdate)


class MicroVMSetSpec(Model):
    replicas: Annotated[int, Field(ge=0, le=MAX_REPLICAS)] = 1
    template: VmTemplate
    strategy: MicroVMSetStrategy = Field(default_factory=MicroVMSetStrategy)

    @model_validator(mode="after")
    def _own_labels(self) -> MicroVMSetSpec:
        taken = {SET_LABEL, TEMPLATE_HASH_LABEL} & set(self.template.metadata.labels)
        if taken:
            raise ValueError(f"template labels {sorted(taken)} are set by the controller")
        return self


class MicroVMSetStatus(Model):
    replicas: int = 0
    """VMs of the set that exist, old template or new."""
    ready_replicas: int = 0
    """Of those, the Running ones."""
    updated_replicas: int = 0
    """VMs of the current template."""
    template_hash: str = ""
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class MicroVMSet(Object):
    """Keep ``replicas`` MicroVMs of a template, replaced one at a time when it changes."""

    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["MicroVMSet"] = "MicroVMSet"
    spec: MicroVMSetSpec
    status: MicroVMSetStatus = Field(default_factory=MicroVMSetStatus)

    @model_validator(mode="after")
    def _name_room(self) -> MicroVMSet:
        if len(self.metadata.name) > MAX_SET_NAME:
            raise ValueError(
                f"metadata.name is {len(self.metadata.name)} characters, at most "
                f"{MAX_SET_NAME} (its VMs' names add a hash and an index)"
            )
        return self
