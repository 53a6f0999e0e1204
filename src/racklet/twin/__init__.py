"""The digital twin: physics of a rack, behind the same interfaces real hardware offers.

Exports the description of a rack (:class:`RackDescription`), its realization
(:class:`TwinRack`, :class:`TwinUnit`), the I2C bus and chip models the hardware drivers talk
to (:class:`TwinSMBus`, :class:`Pac1921Model`, :class:`Ina219Model`), unit profiles
(:class:`UnitProfile`, :func:`load_profile`), the one clock (:class:`SimClock`), the switch
that carries the rack's traffic (:class:`TwinSwitch`, its :class:`Link` objects and their
:class:`LinkProperties`: the interface the fault engine drives) and the fault engine
(:class:`FaultEngine`) that breaks the rack on purpose and mends it.
"""

from racklet.twin._chips import Ina219Model, Pac1921Model
from racklet.twin._clock import SimClock
from racklet.twin._faults import FaultEngine, FaultRefused
from racklet.twin._i2c import I2cDevice, TwinSMBus
from racklet.twin._profile import UnitProfile, load_profile
from racklet.twin._rack import RackDescription, TwinRack
from racklet.twin._relay import Link, LinkProperties
from racklet.twin._switch import TwinSwitch
from racklet.twin._unit import TwinUnit
from racklet.twin.errors import TwinError

__all__ = [
    "FaultEngine",
    "FaultRefused",
    "I2cDevice",
    "Ina219Model",
    "Link",
    "LinkProperties",
    "Pac1921Model",
    "RackDescription",
    "SimClock",
    "TwinError",
    "TwinRack",
    "TwinSMBus",
    "TwinSwitch",
    "TwinUnit",
    "UnitProfile",
    "load_profile",
]
