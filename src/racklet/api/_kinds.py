"""The registry of stored kinds: name, URL plural and model, in one table.

Everything generic (the store, the HTTP API, the docs generator, GitOps) looks kinds up here,
so adding a kind is one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from racklet.api._fault import Fault
from racklet.api._gitsource import GitSource
from racklet.api._meta import Object
from racklet.api._microvm import MicroVM
from racklet.api._microvmset import MicroVMSet
from racklet.api._release import Release, Rollout
from racklet.api._resources import ComputeUnit, Rack
from racklet.api._tokens import ApiToken

Resource = Rack | ComputeUnit | Release | Rollout | GitSource | Fault | MicroVM | MicroVMSet


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    model: type[Object]
    immutable: tuple[tuple[str, ...], ...] = ()  # spec paths fixed once created


KIND_INFO: tuple[KindInfo, ...] = (
    KindInfo("Rack", "racks", Rack),
    KindInfo("ComputeUnit", "computeunits", ComputeUnit, immutable=(("spec", "slot"),)),
    KindInfo("Release", "releases", Release),
    KindInfo("Rollout", "rollouts", Rollout),
    KindInfo("GitSource", "gitsources", GitSource),
    KindInfo("Fault", "faults", Fault),
    KindInfo("MicroVM", "microvms", MicroVM),
    KindInfo("MicroVMSet", "microvmsets", MicroVMSet),
)
KINDS: dict[str, type[Object]] = {info.kind: info.model for info in KIND_INFO}
BY_PLURAL: dict[str, KindInfo] = {info.plural: info for info in KIND_INFO}
BY_KIND: dict[str, KindInfo] = {info.kind: info for info in KIND_INFO}
STORED_KINDS: dict[str, type[Object]] = {**KINDS, "ApiToken": ApiToken}
"""What the store keeps: the served kinds plus those only the controller reads and writes
(API tokens: managed through their own endpoints, never applied from Git)."""


def kind_of(model: type[Object]) -> str:
    """The ``kind`` string a model class stores under."""
    return str(model.model_fields["kind"].default)
