"""The controller's reconcilers, one per kind."""

from racklet.controller.reconcilers._faults import FaultReconciler
from racklet.controller.reconcilers._microvms import MicroVMReconciler
from racklet.controller.reconcilers._microvmsets import MicroVMSetReconciler
from racklet.controller.reconcilers._rack import RackReconciler
from racklet.controller.reconcilers._units import ComputeUnitReconciler

__all__ = [
    "ComputeUnitReconciler",
    "FaultReconciler",
    "MicroVMReconciler",
    "MicroVMSetReconciler",
    "RackReconciler",
]
