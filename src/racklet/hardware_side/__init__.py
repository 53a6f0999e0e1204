"""The hardware side's composition root: a twin rack wired to the real firmware.

It puts together what the layers below it keep apart: the twin's physics
(:mod:`racklet.twin`), one real BMC service per unit (:mod:`racklet.bmc`), the RMC
(:mod:`racklet.rmc`) and each unit's real firmware (:mod:`racklet.boot.client`, then
:mod:`racklet.node`). Nothing imports it; ``python -m racklet.hardware_side --state-dir D``
runs it (``racklet up`` starts it). It never imports the management side.
"""

from racklet.hardware_side._firmware import unit_firmware
from racklet.hardware_side._process import main

__all__ = ["main", "unit_firmware"]
