"""The management side's controller: reconcile runtime, reconcilers, HTTP API, metrics.

It reaches units only through Redfish (HTTPS) and their heartbeats; it never imports the twin,
the BMC or the unit agent. ``python -m racklet.controller --state-dir D`` runs it.
"""

from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRecord, HeartbeatRegistry
from racklet.controller._informer import Informer
from racklet.controller._leader import LeaderElection
from racklet.controller._metrics import ControllerMetrics
from racklet.controller._periodic import Periodic
from racklet.controller._phase import Observation, PhaseVerdict, derive_phase
from racklet.controller._process import Controller
from racklet.controller._runtime import Reconciler, Registry, Runtime, RuntimeObserver
from racklet.controller._services import Service, Services
from racklet.controller.errors import ControllerError, PermanentError, TemporaryError
from racklet.controller.reconcilers import ComputeUnitReconciler, RackReconciler

__all__ = [
    "ComputeUnitReconciler",
    "Controller",
    "ControllerError",
    "ControllerMetrics",
    "HeartbeatBody",
    "HeartbeatRecord",
    "HeartbeatRegistry",
    "Informer",
    "LeaderElection",
    "Observation",
    "Periodic",
    "PermanentError",
    "PhaseVerdict",
    "RackReconciler",
    "Reconciler",
    "Registry",
    "Runtime",
    "RuntimeObserver",
    "Service",
    "Services",
    "TemporaryError",
    "derive_phase",
]
