"""Rollouts: one engine (:mod:`._engine`, the strategy) over two targets, the unit OS
(:mod:`._os_target`) and the BMCs' firmware (:mod:`._firmware_target`)."""

from racklet.controller.rollout._engine import RolloutReconciler
from racklet.controller.rollout._firmware_target import BmcFirmwareTarget, FirmwareBmc
from racklet.controller.rollout._os_target import UnitOsTarget
from racklet.controller.rollout._target import StepVerdict, Target

__all__ = [
    "BmcFirmwareTarget",
    "FirmwareBmc",
    "RolloutReconciler",
    "StepVerdict",
    "Target",
    "UnitOsTarget",
]
