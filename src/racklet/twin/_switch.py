"""The rack's Ethernet switch: a port per unit and per BMC, an uplink, and the relays between.

Every port and the uplink is a :class:`~racklet.twin._relay.Link` (up/down, latency, jitter,
loss, bandwidth): ``switch.port("unit-3")``, ``switch.port("unit-3-bmc")``, ``switch.uplink``.
When the twin process serves a rack, :meth:`TwinSwitch.serve` starts one relay per route, so a
unit's connections to the management side cross its port then the uplink, and the
controller's connections to a BMC cross the uplink then the BMC's port (``racklet.yaml`` names
the loopback ports: see :func:`routes`). A test rack without routes still has the links.

A unit's port also gives the unit *carrier*: link when the port is up and the unit in its slot
is powered and present. A unit's own code treats no carrier as no network, as an OS does with a
down interface. ``set_enabled(slot, False)`` is the slot-numbered way to take a unit's port down.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from racklet.config import RackConfig
from racklet.log import get_logger
from racklet.twin._relay import Hop, Link, LinkProperties, Relay
from racklet.twin.errors import TwinError

PORT_SPEED_MBPS = 1000  # Gigabit Ethernet on the Pi 4 and Pi 5
PORT_BANDWIDTH_BPS = PORT_SPEED_MBPS * 1e6
TOWARD_MANAGEMENT, TOWARD_HARDWARE = 0, 1


@dataclass
class SwitchPort:
    """A unit's port as the unit sees it: carrier, from the link's state and the unit's."""

    number: int
    link: Link
    link_changes: int = 0
    _device_up: Callable[[], bool] = field(default=lambda: False, repr=False)
    _last: bool = field(default=False, repr=False)

    @property
    def enabled(self) -> bool:
        return self.link.up

    @property
    def carrier(self) -> bool:
        up = self.link.up and self._device_up()
        if up != self._last:
            self._last = up
            self.link_changes += 1
        return up


@dataclass(frozen=True)
class Route:
    """One relay: ``listen`` → ``target`` on loopback, over ``hops``."""

    name: str
    listen: int
    target: int
    hops: list[Hop]


class TwinSwitch:
    """The switch: links by name, the uplink, and the relays that carry the rack's traffic."""

    def __init__(
        self,
        ports: int,
        *,
        port_bandwidth_bps: float = PORT_BANDWIDTH_BPS,
        uplink_bandwidth_bps: float = PORT_BANDWIDTH_BPS,
        seed: int = 0,
    ) -> None:
        rng = random.Random(seed)  # jitter and loss draw from one seeded source: reproducible
        port = LinkProperties(bandwidth_bps=port_bandwidth_bps)
        self.uplink = Link("uplink", LinkProperties(bandwidth_bps=uplink_bandwidth_bps), rng)
        self._links: dict[str, Link] = {"uplink": self.uplink}
        self.ports: dict[int, SwitchPort] = {}
        for number in range(1, ports + 1):
            unit, bmc = Link(f"unit-{number}", port, rng), Link(f"unit-{number}-bmc", port, rng)
            self._links[unit.name] = unit
            self._links[bmc.name] = bmc
            self.ports[number] = SwitchPort(number, unit)
        self._relays: list[Relay] = []
        self._log = get_logger("twin")

    def port(self, name: str) -> Link:
        """A port by name: ``unit-N`` (the unit's), ``unit-N-bmc`` (its BMC's) or ``uplink``."""
        try:
            return self._links[name]
        except KeyError:
            known = ", ".join(self._links)
            raise TwinError(f"the switch has no port {name!r} ({known})") from None

    @property
    def links(self) -> dict[str, Link]:
        return dict(self._links)

    def attach(self, number: int, device_up: Callable[[], bool]) -> SwitchPort:
        port = self.ports[number]
        port._device_up = device_up
        return port

    def set_enabled(self, number: int, enabled: bool) -> None:
        """Take a unit's port (by slot) down or up: down is a partition of that unit."""
        self.ports[number].link.set_link(enabled)

    async def serve(self, routes: list[Route]) -> None:
        """Start a relay per route (every one, or none: a failed start stops those started)."""
        try:
            for route in routes:
                relay = Relay(route.name, route.listen, route.target, route.hops)
                await relay.start()
                self._relays.append(relay)
        except OSError as exc:
            await self.stop()
            raise TwinError(f"switch: cannot listen on 127.0.0.1:{route.listen}: {exc}") from exc
        if routes:
            self._log.info(f"switch relaying {len(routes)} routes, uplink {self.uplink.properties}")

    async def stop(self) -> None:
        relays, self._relays = self._relays, []
        for relay in relays:
            await relay.stop()

    def routes(self, config: RackConfig) -> list[Route]:
        """The relays ``config`` asks for (none when it predates the relaying switch)."""
        if config.switch is None:
            return []
        controllers = {"machine": config.controller.machine_port}
        if config.controller.bulk_port is not None:
            controllers["bulk"] = config.controller.bulk_port
        for index, peer in enumerate(config.peer_controllers, start=2):
            controllers[f"machine:controller-{index}"] = peer.machine_port
        up, down = TOWARD_MANAGEMENT, TOWARD_HARDWARE
        routes: list[Route] = []
        for unit in config.units:
            port, bmc = self.port(unit.name), self.port(f"{unit.name}-bmc")
            for role, listen in unit.switch_ports.items():
                if role not in controllers:
                    raise TwinError(f"{unit.name}: switch port for unknown listener {role!r}")
                hops = [(port, up), (self.uplink, up)]
                routes.append(Route(f"{unit.name}>{role}", listen, controllers[role], hops))
            front = urlsplit(unit.bmc.url).port
            if unit.bmc_port is not None and front is not None:
                hops = [(self.uplink, down), (bmc, down)]
                routes.append(Route(f"{unit.name}-bmc", front, unit.bmc_port, hops))
        return routes
