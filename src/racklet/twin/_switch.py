"""The rack's Ethernet switch: one port per slot, carrier, and the admin state of each port.

The twin's traffic itself runs over loopback, so what the switch models is *carrier*: a port
has link when it is enabled and the unit in its slot is powered and present. A unit's own code
treats no carrier as no network, exactly as an OS does with a down interface: the bootstrap
client waits for link, then gives up the network; the OS agent skips its heartbeats. Disabling
a port is how a network partition is injected (``set_enabled(slot, False)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from racklet.log import get_logger

PORT_SPEED_MBPS = 1000  # Gigabit Ethernet on the Pi 4 and Pi 5


@dataclass
class SwitchPort:
    number: int
    enabled: bool = True
    link_changes: int = 0
    _device_up: Callable[[], bool] = field(default=lambda: False, repr=False)
    _last: bool = field(default=False, repr=False)

    @property
    def carrier(self) -> bool:
        up = self.enabled and self._device_up()
        if up != self._last:
            self._last = up
            self.link_changes += 1
        return up


class TwinSwitch:
    """An unmanaged-looking switch with per-port admin state (the fault-injection hook)."""

    def __init__(self, ports: int) -> None:
        self.ports = {n: SwitchPort(n) for n in range(1, ports + 1)}
        self._log = get_logger("twin")

    def attach(self, number: int, device_up: Callable[[], bool]) -> SwitchPort:
        port = self.ports[number]
        port._device_up = device_up
        return port

    def set_enabled(self, number: int, enabled: bool) -> None:
        """Administratively enable or disable a port (disable = partition that unit)."""
        port = self.ports[number]
        if port.enabled != enabled:
            port.enabled = enabled
            self._log.info(f"switch port {number} {'enabled' if enabled else 'disabled'}")
