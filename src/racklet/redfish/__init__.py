"""An async Redfish client: how the controller (and the CLI) talk to BMCs."""

from racklet.redfish._client import RESET_TYPES, RedfishClient
from racklet.redfish._resources import (
    ChassisView,
    EnvironmentView,
    OsSlotView,
    PowerLimitView,
    ResetRequest,
    SystemView,
)
from racklet.redfish._sse import MAX_EVENT_BYTES, bounded_lines, sse_frames
from racklet.redfish.errors import (
    RedfishClientError,
    RedfishError,
    RedfishUnreachable,
    RedfishUntrusted,
)

__all__ = [
    "MAX_EVENT_BYTES",
    "RESET_TYPES",
    "ChassisView",
    "EnvironmentView",
    "OsSlotView",
    "PowerLimitView",
    "RedfishClient",
    "RedfishClientError",
    "RedfishError",
    "RedfishUnreachable",
    "RedfishUntrusted",
    "ResetRequest",
    "SystemView",
    "bounded_lines",
    "sse_frames",
]
