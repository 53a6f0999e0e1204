"""Racklet's resource types (``racklet.dev/v1alpha1``) in the Kubernetes style.

Pydantic models with camelCase wire names, condition helpers and validation errors that name
the offending field. No I/O beyond (de)serialisation; storing objects is :mod:`racklet.store`.
"""

from racklet.api._gitsource import (
    GitSource,
    GitSourceSpec,
    GitSourceStatus,
    SyncRecord,
    parse_duration,
)
from racklet.api._io import from_yaml, parse, problems, to_dict, to_yaml, validate
from racklet.api._kinds import BY_KIND, BY_PLURAL, KIND_INFO, KINDS, KindInfo, Resource, kind_of
from racklet.api._meta import (
    API_VERSION,
    Condition,
    Object,
    ObjectMeta,
    ObjectReference,
    find_condition,
    remove_condition,
    set_condition,
    utcnow,
)
from racklet.api._release import (
    ImageRef,
    Release,
    ReleaseSpec,
    ReleaseStatus,
    Rollout,
    RolloutSpec,
    RolloutStatus,
)
from racklet.api._resources import (
    PHASES,
    POWER_CYCLE_ANNOTATION,
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ComputeUnitStatus,
    Event,
    Phase,
    Rack,
    RackSpec,
    RackStatus,
)
from racklet.api._selector import Requirement, Selector, parse_selector
from racklet.api.errors import ApiError, InvalidObject, InvalidSelector

__all__ = [
    "API_VERSION",
    "BY_KIND",
    "BY_PLURAL",
    "KINDS",
    "KIND_INFO",
    "PHASES",
    "POWER_CYCLE_ANNOTATION",
    "ApiError",
    "BmcRef",
    "ComputeUnit",
    "ComputeUnitSpec",
    "ComputeUnitStatus",
    "Condition",
    "Event",
    "GitSource",
    "GitSourceSpec",
    "GitSourceStatus",
    "ImageRef",
    "InvalidObject",
    "InvalidSelector",
    "KindInfo",
    "Object",
    "ObjectMeta",
    "ObjectReference",
    "Phase",
    "Rack",
    "RackSpec",
    "RackStatus",
    "Release",
    "ReleaseSpec",
    "ReleaseStatus",
    "Requirement",
    "Resource",
    "Rollout",
    "RolloutSpec",
    "RolloutStatus",
    "Selector",
    "SyncRecord",
    "find_condition",
    "from_yaml",
    "kind_of",
    "parse",
    "parse_duration",
    "parse_selector",
    "problems",
    "remove_condition",
    "set_condition",
    "to_dict",
    "to_yaml",
    "utcnow",
    "validate",
]
