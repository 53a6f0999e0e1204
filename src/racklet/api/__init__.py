"""Racklet's resource types (``racklet.dev/v1alpha1``) in the Kubernetes style.

Pydantic models with camelCase wire names, condition helpers and validation errors that name
the offending field. No I/O beyond (de)serialisation; storing objects is :mod:`racklet.store`.
"""

from racklet.api._io import from_yaml, parse, problems, to_dict, to_yaml, validate
from racklet.api._meta import (
    API_VERSION,
    Condition,
    ObjectMeta,
    find_condition,
    remove_condition,
    set_condition,
    utcnow,
)
from racklet.api._resources import (
    KINDS,
    PHASES,
    POWER_CYCLE_ANNOTATION,
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ComputeUnitStatus,
    Event,
    ObjectReference,
    Phase,
    Rack,
    RackSpec,
    RackStatus,
    Resource,
)
from racklet.api.errors import ApiError, InvalidObject

__all__ = [
    "API_VERSION",
    "KINDS",
    "PHASES",
    "POWER_CYCLE_ANNOTATION",
    "ApiError",
    "BmcRef",
    "ComputeUnit",
    "ComputeUnitSpec",
    "ComputeUnitStatus",
    "Condition",
    "Event",
    "InvalidObject",
    "ObjectMeta",
    "ObjectReference",
    "Phase",
    "Rack",
    "RackSpec",
    "RackStatus",
    "Resource",
    "find_condition",
    "from_yaml",
    "parse",
    "problems",
    "remove_condition",
    "set_condition",
    "to_dict",
    "to_yaml",
    "utcnow",
    "validate",
]
