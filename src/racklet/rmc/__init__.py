"""The Rack Management Controller's Redfish service: one endpoint for the whole rack.

Modelled on OpenBMC bmcweb's Redfish aggregation: every unit BMC is an AggregationSource, its
Systems, Chassis and Managers members appear in the RMC's collections under a per-BMC prefix
(``/redfish/v1/Systems/unit-1_unit-1``), and requests for them are forwarded to the BMC over
HTTPS (rack CA) with the RMC's own client certificate. Given the rack's own hardware (a
:class:`racklet.hw.RackBoard`), it also runs the rack fans' PID zones (:class:`CoolingConfig`,
:class:`CoolingController`), meters the busbar and the fans, and serves ``Chassis/rack``
and ``/metrics`` (:class:`RackMonitor`). See ``docs/rmc.md``.
"""

from racklet.rmc._cooling import CoolingController, ZoneMode
from racklet.rmc._pid import CoolingConfig, load_cooling, parse_cooling
from racklet.rmc._rack import RackMonitor
from racklet.rmc._satellite import AggregationSource
from racklet.rmc._service import RmcService, RmcSettings, sources_from_config
from racklet.rmc._setup import (
    RMC_CLIENT_NAME,
    RMC_USER,
    RunningRmc,
    bmc_credentials,
    prepare_rmc,
    rmc_dir,
    serve_rmc,
)
from racklet.rmc.errors import RmcConfigError, RmcError, SatelliteUnreachable

__all__ = [
    "RMC_CLIENT_NAME",
    "RMC_USER",
    "AggregationSource",
    "CoolingConfig",
    "CoolingController",
    "RackMonitor",
    "RmcConfigError",
    "RmcError",
    "RmcService",
    "RmcSettings",
    "RunningRmc",
    "SatelliteUnreachable",
    "ZoneMode",
    "bmc_credentials",
    "load_cooling",
    "parse_cooling",
    "prepare_rmc",
    "rmc_dir",
    "serve_rmc",
    "sources_from_config",
]
