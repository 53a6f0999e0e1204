"""The rack's Ethernet switch: a port per unit and per BMC, an uplink, and the relays between.

Every port and the uplink is a :class:`~racklet.twin._relay.Link` (up/down, latency, jitter,
loss, bandwidth): ``switch.port("unit-3")``, ``switch.port("unit-3-bmc")``, ``switch.uplink``.
When the twin process serves a rack, :meth:`TwinSwitch.serve` starts one relay per route, so a
unit's connections to the management side cross its port then the uplink, and the
controller's connections to a BMC cross the uplink then the BMC's port (``racklet.yaml`` names
the loopback ports: see :func:`routes`). A test rack without routes still has the links.

Traffic between two units (a booting unit fetching payload pieces from a peer,
``racklet.boot._p2p``) crosses the client's port, then the server's: :meth:`TwinSwitch.
peer_address` gives the client the address of a relay over those two links, made at first use
(a unit's peer server listens on an ephemeral port the switch cannot know ahead). On hardware
the real switch forwards the frames and a unit connects to the peer's own address.

A unit's port also gives the unit *carrier*: link when the port is up and the unit in its slot
is powered and present. A unit's own code treats no carrier as no network, as an OS does with a
down interface. ``set_enabled(slot, False)`` is the slot-numbered way to take a unit's port down.
"""

from __future__ import annotations

import asyncio
import random
import threading
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
PEER_RELAY_SECONDS = 10.0
"""Longest a unit's download thread waits for the switch's loop to open a peer relay."""


@dataclass
class SwitchPort:
    """A unit's port as the unit sees it: carrier, from the link's state and the unit's."""

    number: int
    link: Link
    link_changes: int = 0
    _device_up: Callable[[], bool] = field(default=lambda: False, repr=False)
    peer_address: Callable[[str, str, int], tuple[str, int]] = field(
        default=lambda unit, host, port: (host, port), repr=False
    )
    """Where this port's unit connects to reach ``host:port`` served by another ``unit``
    (blocking; see :meth:`TwinSwitch.peer_address`)."""
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
        self._peer_relays: dict[tuple[str, str], Relay] = {}
        self._peer_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
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
        client = port.link.name
        port.peer_address = lambda unit, host, at: self.peer_address(client, unit, host, at)
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
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
            self._peer_lock = asyncio.Lock()
            self._log.info(f"switch relaying {len(routes)} routes, uplink {self.uplink.properties}")

    async def stop(self) -> None:
        self._loop = self._loop_thread = None
        relays, self._relays = self._relays, []
        self._peer_relays.clear()
        for relay in relays:
            await relay.stop()

    def peer_address(self, client: str, server: str, host: str, port: int) -> tuple[str, int]:
        """Where unit ``client`` connects to reach ``host:port``, served by unit ``server``:
        a relay over the client's port (its bytes toward the switch) and the server's (toward
        that unit), opened at first use and kept while the server's port is the same.

        Blocking, for a unit's download thread; the address itself when the switch relays
        nothing (a test rack without routes), for a unit it has no port of, or when called on
        the switch's own loop (which would wait on itself)."""
        loop = self._loop
        if (
            loop is None
            or self._loop_thread == threading.get_ident()
            or host != "127.0.0.1"
            or client not in self._links
            or server not in self._links
            or client == server
        ):
            return host, port
        try:
            future = asyncio.run_coroutine_threadsafe(self._peer_relay(client, server, port), loop)
            return "127.0.0.1", future.result(timeout=PEER_RELAY_SECONDS)
        except (RuntimeError, TimeoutError, TwinError) as exc:  # the loop stopping, a bind failure
            raise OSError(f"switch: no path from {client} to {server}: {exc}") from exc

    async def _peer_relay(self, client: str, server: str, target: int) -> int:
        assert self._peer_lock is not None
        async with self._peer_lock:  # two download threads of one unit ask at once
            relay = self._peer_relays.get((client, server))
            if relay is not None and relay.target_port == target:
                return relay.listen_port
            if relay is not None:  # the peer's OS restarted on another port
                self._relays.remove(relay)
                await relay.stop()
            hops = [(self.port(client), TOWARD_MANAGEMENT), (self.port(server), TOWARD_HARDWARE)]
            relay = Relay(f"{client}>{server}:peer", 0, target, hops)
            try:
                await relay.start()
            except OSError as exc:
                raise TwinError(f"cannot listen for {client} to {server}: {exc}") from exc
            self._relays.append(relay)
            self._peer_relays[(client, server)] = relay
            get_logger("twin", unit=client).info(
                f"switch relaying {client} to {server}'s port {target} over both units' ports "
                f"(127.0.0.1:{relay.listen_port})"
            )
            return relay.listen_port

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
