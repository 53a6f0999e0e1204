"""The fault engine: breaks the twin on purpose, and mends exactly what it broke.

A fault is asked for by id, kind, parameters and the targets the management side chose
(unit names, or the rack). Each kind is an effect with ``apply`` and ``revert``; the engine
records what it changed so a clear restores that, and only that. Every effect claims *facets*
of its targets (a unit's power, its link, one of its sensors, one A/B slot, the busbar's
supply); a second fault that claims a facet already held is refused with a reason naming the
holder, so overlapping faults either compose (different facets) or are refused — never
stacked into a state no clear can undo.

What this module does not do: choose targets (selectors are the management side's), time
faults (start and duration are the Fault reconciler's) or speak HTTP (``_control``). It is
driven by plain calls, so a property test can drive it step by step without a network.

Network faults go through :class:`NetworkPort`, one narrow adapter: the carrier-only switch
can only take a port down; a relay switch (``Switch.port(name).set_link/set_properties``)
also degrades links, and :func:`network_for` picks whichever the rack has.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from racklet.log import get_logger
from racklet.twin._rack import TwinRack
from racklet.twin._unit import TwinUnit
from racklet.twin.errors import TwinError
from racklet.wire import FAULT_KINDS, RACK_WIDE_FAULTS

KINDS = FAULT_KINDS  # the Fault kind's list (racklet.wire): both sides name them alike
RACK_KINDS = RACK_WIDE_FAULTS
"""Kinds that act on the rack as a whole (no unit targets)."""
SENSOR_MODES = ("stuck", "nan", "absent", "drift")
PARTITION_PATHS = ("unit-management", "bmc-management", "unit-unit")


class FaultRefused(TwinError):
    """A fault that cannot be applied; ``code`` says why as HTTP would: 422 bad parameters,
    404 a target the rack does not have, 409 the rack's state (a slot empty or occupied, a
    facet another fault holds, a kind this hardware cannot do)."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


def _conflict(message: str) -> FaultRefused:
    return FaultRefused(message, 409)


class BmcControl(Protocol):
    """What the engine needs of a BMC host (``racklet.bmc.BmcHost``)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def hang(self) -> None: ...
    async def resume(self) -> None: ...
    def request_restart(self) -> None: ...


class NetworkPort(Protocol):
    """One unit's network as the engine sees it: the adapter between engine and switch."""

    def set_link(self, up: bool) -> None: ...
    def set_properties(
        self, latency_ms: float, jitter_ms: float, loss: float, bandwidth_bps: float | None
    ) -> None: ...
    def reset(self) -> None: ...
    @property
    def degradable(self) -> bool: ...


class _CarrierPort:
    """The carrier-only switch: a port can be taken down (unit ↔ everything), nothing else."""

    degradable = False

    def __init__(self, rack: TwinRack, slot: int) -> None:
        self._rack, self._slot = rack, slot

    def set_link(self, up: bool) -> None:
        self._rack.switch.set_enabled(self._slot, up)

    def set_properties(
        self, latency_ms: float, jitter_ms: float, loss: float, bandwidth_bps: float | None
    ) -> None:
        raise _conflict("this switch models carrier only: link degradation needs the relay switch")

    def reset(self) -> None:
        self._rack.switch.set_enabled(self._slot, True)


class _RelayPort:
    """A relay switch's port (``set_link``/``set_properties``/``reset``), passed through."""

    degradable = True

    def __init__(self, port: Any) -> None:
        self._port = port

    def set_link(self, up: bool) -> None:
        self._port.set_link(up)

    def set_properties(
        self, latency_ms: float, jitter_ms: float, loss: float, bandwidth_bps: float | None
    ) -> None:
        self._port.set_properties(
            latency_ms=latency_ms, jitter_ms=jitter_ms, loss=loss, bandwidth_bps=bandwidth_bps
        )

    def reset(self) -> None:
        self._port.reset()


def network_for(rack: TwinRack, unit: TwinUnit) -> NetworkPort:
    """The unit's port on whatever switch the rack has: a relay's if it has one."""
    relay_port = getattr(rack.switch, "port", None)
    if callable(relay_port):
        return _RelayPort(relay_port(unit.name))
    return _CarrierPort(rack, unit.slot)


@dataclass
class Applied:
    """One active fault: what it is, whom it hit and how to undo it."""

    id: str
    kind: str
    params: dict[str, Any]
    targets: list[str]
    facets: list[tuple[str, str]]
    undo: list[Callable[[], Any]] = field(default_factory=list)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "targets": self.targets,
            "message": self.message,
        }


def _number(params: Mapping[str, Any], name: str, default: float | None = None) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        if value is None:
            raise FaultRefused(f"parameter {name!r} is required")
        raise FaultRefused(f"parameter {name!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise FaultRefused(f"parameter {name!r} must be finite, got {value!r}")
    return float(value)


def _choice(params: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = params.get(name, default)
    if value not in choices:
        raise FaultRefused(f"parameter {name!r} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


class FaultEngine:
    """Applies and reverts faults on one :class:`TwinRack` and its BMC hosts."""

    def __init__(
        self,
        rack: TwinRack,
        bmcs: Mapping[str, BmcControl] | None = None,
        *,
        bmc_dirs: Mapping[str, Path] | None = None,
        network: Callable[[TwinRack, TwinUnit], NetworkPort] = network_for,
    ) -> None:
        self.rack = rack
        self._bmcs = dict(bmcs or {})
        self._bmc_dirs = dict(bmc_dirs or {})
        self._network = network
        self.active: dict[str, Applied] = {}
        self._log = get_logger("twin")

    def capabilities(self) -> dict[str, str]:
        """Every kind, mapped to ``""`` when it can be done here or to why it cannot."""
        degradable = self.rack.units and all(
            self._network(self.rack, unit).degradable for unit in self.rack.units.values()
        )
        reasons: dict[str, str] = dict.fromkeys(KINDS, "")
        if not degradable:
            reasons["LinkDegradation"] = "the switch models carrier only (no relay)"
        if not self._bmcs:
            for kind in ("BmcHang", "BmcReboot"):
                reasons[kind] = "no BMC hosts are attached to the fault engine"
        reasons["ControllerCrash"] = (
            "done by the `racklet up` supervisor's side, not by the hardware"
        )
        return reasons

    # -- inject / clear ----------------------------------------------------------------------

    async def inject(
        self, fault_id: str, kind: str, params: Mapping[str, Any], targets: list[str]
    ) -> Applied:
        """Apply a fault; idempotent for the same id. Raises :class:`FaultRefused`."""
        existing = self.active.get(fault_id)
        if existing is not None:
            if existing.kind == kind and existing.targets == sorted(targets):
                return existing
            raise _conflict(f"fault {fault_id!r} is already active with other parameters")
        if kind not in KINDS:
            raise FaultRefused(f"unknown fault kind {kind!r} (one of {', '.join(KINDS)})")
        unsupported = self.capabilities()[kind]
        if unsupported:
            raise _conflict(f"{kind} cannot be done here: {unsupported}")
        params = dict(params)
        units = self._targets(kind, targets)
        applied = Applied(
            fault_id, kind, params, sorted(u.name for u in units), self._facets(kind, params, units)
        )
        for facet in applied.facets:
            holder = self._holder(facet)
            if holder is not None:
                raise _conflict(
                    f"{facet[0]} already has {holder.kind} fault {holder.id!r} on its "
                    f"{facet[1]}; clear it first"
                )
        apply = getattr(self, f"_apply_{kind}")
        try:
            await apply(applied, units)
        except BaseException:
            await self._undo(applied)
            raise
        self.active[fault_id] = applied
        self._log.warning(
            f"fault {fault_id} ({kind}) active on {', '.join(applied.targets) or 'the rack'}"
        )
        return applied

    async def clear(self, fault_id: str) -> Applied | None:
        """Revert a fault; None when it is not active (clearing twice is not an error)."""
        applied = self.active.pop(fault_id, None)
        if applied is None:
            return None
        await self._undo(applied)
        self._log.info(f"fault {fault_id} ({applied.kind}) cleared")
        return applied

    async def clear_all(self) -> None:
        for fault_id in list(self.active):
            await self.clear(fault_id)

    async def _undo(self, applied: Applied) -> None:
        while applied.undo:
            step = applied.undo.pop()
            result = step()
            if hasattr(result, "__await__"):
                await result

    def _holder(self, facet: tuple[str, str]) -> Applied | None:
        for applied in self.active.values():
            if facet in applied.facets:
                return applied
        return None

    def _targets(self, kind: str, targets: list[str]) -> list[TwinUnit]:
        if kind in RACK_KINDS:
            return []
        if not targets:
            raise FaultRefused(f"{kind} needs at least one target unit")
        units = []
        for name in dict.fromkeys(targets):
            unit = self.rack.units.get(name)
            if unit is None:
                raise FaultRefused(f"rack {self.rack.description.name} has no unit {name!r}", 404)
            if not unit.present and kind != "SlotPull":
                raise _conflict(f"slot {unit.slot} ({name}) is empty")
            units.append(unit)
        return units

    def _facets(
        self, kind: str, params: Mapping[str, Any], units: list[TwinUnit]
    ) -> list[tuple[str, str]]:
        rack_units = [name for name in self.rack.units if name in self._bmcs]
        if kind == "BusbarOutage":  # the BMC boards are fed from the busbar too
            return [("rack", "supply"), *((name, "BMC") for name in rack_units)]
        if kind == "BrownOut":
            return [("rack", "psu rating")]
        if kind == "ControllerCrash":
            return [("rack", "controller")]
        aspect = {
            "PowerLoss": "power",
            "SlotPull": "power",
            "Partition": f"link ({params.get('path', 'unit-management')})",
            "LinkDegradation": "link properties",
            "BmcHang": "BMC",
            "BmcReboot": "BMC",
            "SensorFailure": f"{params.get('sensor', 'temperature')} sensor",
            "StorageCorruption": f"slot {params.get('slot', 'active')}",
        }[kind]
        return [(unit.name, aspect) for unit in units]

    # -- the kinds ---------------------------------------------------------------------------

    async def _apply_BusbarOutage(self, applied: Applied, units: list[TwinUnit]) -> None:
        hosts = [self._bmcs[name] for name in self.rack.units if name in self._bmcs]
        # Every BMC loses power too, and they all boot afresh at once when it returns.
        await asyncio.gather(*(host.stop() for host in hosts))
        applied.undo.append(lambda: asyncio.gather(*(host.start() for host in hosts)))
        for unit in self.rack.units.values():
            _cut(applied, unit, "busbar")
        applied.message = "the busbar lost its supply: every unit and every BMC is off"

    async def _apply_BrownOut(self, applied: Applied, units: list[TwinUnit]) -> None:
        watts = _number(applied.params, "watts")
        busbar = self.rack.busbar
        idle = min(unit.profile.idle_watts for unit in self.rack.units.values())
        if watts < idle:
            raise FaultRefused(
                f"a brown-out to {watts:g} W is below one unit's idle draw ({idle:g} W)"
            )
        before = busbar.rated_watts
        busbar.rated_watts = watts
        applied.undo.append(lambda: setattr(busbar, "rated_watts", before))
        applied.message = f"the PSU delivers {watts:g} W instead of {before:g} W"

    async def _apply_PowerLoss(self, applied: Applied, units: list[TwinUnit]) -> None:
        for unit in units:
            _cut(applied, unit, "feed")
        applied.message = "the unit's supply is cut"

    async def _apply_SlotPull(self, applied: Applied, units: list[TwinUnit]) -> None:
        for unit in units:
            if not unit.present:
                raise _conflict(f"slot {unit.slot} ({unit.name}) is already empty")
            self.rack.pull(unit.name)
            applied.undo.append(functools.partial(self.rack.insert, unit.name))
        applied.message = "pulled from the slot"

    async def _apply_Partition(self, applied: Applied, units: list[TwinUnit]) -> None:
        path = _choice(applied.params, "path", PARTITION_PATHS, "unit-management")
        relay_port = getattr(self.rack.switch, "port", None)
        if path == "bmc-management" and callable(relay_port):
            for unit in units:  # the BMC's own switch port: the controller loses its BMC
                bmc_port = _RelayPort(relay_port(f"{unit.name}-bmc"))
                bmc_port.set_link(False)
                applied.undo.append(functools.partial(bmc_port.set_link, True))
            applied.message = "the BMC's switch port is down"
            return
        if path != "unit-management":
            raise _conflict(f"partition {path} needs traffic this twin's switch does not carry")
        for unit in units:
            port = self._network(self.rack, unit)
            port.set_link(False)
            applied.undo.append(functools.partial(port.set_link, True))
        applied.message = "the unit's switch port is down"

    async def _apply_LinkDegradation(self, applied: Applied, units: list[TwinUnit]) -> None:
        latency = _number(applied.params, "latencyMs", 0.0)
        jitter = _number(applied.params, "jitterMs", 0.0)
        loss = _number(applied.params, "loss", 0.0)
        bandwidth = applied.params.get("bandwidthBps")
        if latency < 0 or jitter < 0 or not 0.0 <= loss < 1.0:
            raise FaultRefused("latencyMs and jitterMs must be >= 0 and loss in [0, 1)")
        if bandwidth is not None:
            bandwidth = _number(applied.params, "bandwidthBps")
            if bandwidth <= 0:
                raise FaultRefused("bandwidthBps must be > 0")
        for unit in units:
            port = self._network(self.rack, unit)
            port.set_properties(latency, jitter, loss, bandwidth)
            applied.undo.append(port.reset)
        applied.message = f"latency {latency:g} ms, jitter {jitter:g} ms, loss {loss:g}"

    def _bmc(self, unit: TwinUnit) -> BmcControl:
        try:
            return self._bmcs[unit.name]
        except KeyError:
            raise _conflict(f"{unit.name}: no BMC host attached") from None

    async def _apply_BmcHang(self, applied: Applied, units: list[TwinUnit]) -> None:
        for unit in units:
            host = self._bmc(unit)
            await host.hang()
            applied.undo.append(host.resume)
        applied.message = "the BMC stopped answering (its listener is gone)"

    async def _apply_BmcReboot(self, applied: Applied, units: list[TwinUnit]) -> None:
        for unit in units:
            self._bmc(unit).request_restart()
        applied.message = "the BMC was restarted (the unit kept running)"

    async def _apply_SensorFailure(self, applied: Applied, units: list[TwinUnit]) -> None:
        # "slot": the RMC's temperature input of the unit's slot (its fan zones read it)
        sensor = _choice(applied.params, "sensor", ("temperature", "power", "slot"), "temperature")
        mode = _choice(applied.params, "mode", SENSOR_MODES, "stuck")
        if sensor == "power" and mode in ("nan", "drift"):
            raise FaultRefused(
                "a power monitor's ADC cannot read NaN or drift on its own: use stuck or absent"
            )
        rate = _number(applied.params, "ratePerSecond", 0.5)
        for unit in units:
            if sensor == "power" and mode == "absent":
                socket = self.rack.monitor(unit.name)
                socket.pull()
                applied.undo.append(socket.insert)
                continue
            unit.sensor_taps[sensor] = _tap(unit, sensor, mode, rate)
            applied.undo.append(functools.partial(unit.sensor_taps.pop, sensor, None))
        applied.message = f"{sensor} sensor {mode}"

    async def _apply_StorageCorruption(self, applied: Applied, units: list[TwinUnit]) -> None:
        how = _choice(applied.params, "mode", ("bitflip", "truncate"), "bitflip")
        which = _choice(applied.params, "slot", ("active", "A", "B"), "active")
        seed = int(_number(applied.params, "seed", 0))
        touched = []
        for unit in units:
            slot = self._committed_slot(unit) if which == "active" else which
            payload = unit.storage / "slots" / slot / "payload.bin"
            try:
                original = payload.read_bytes()
            except OSError as exc:
                raise _conflict(f"{unit.name}: slot {slot} holds no payload ({exc})") from None
            if not original:
                raise FaultRefused(f"{unit.name}: slot {slot} is empty")
            broken = bytearray(original)
            if how == "truncate":
                del broken[len(original) // 2 :]
            else:
                broken[random.Random(seed).randrange(len(original))] ^= 0x01
            payload.write_bytes(bytes(broken))
            applied.undo.append(functools.partial(payload.write_bytes, original))
            touched.append(f"{unit.name} slot {slot}")
        applied.message = f"{how} in {', '.join(touched)}"

    def _committed_slot(self, unit: TwinUnit) -> str:
        state = self._bmc_dirs.get(unit.name)
        try:
            record = json.loads((state / "ab.json").read_text()) if state else None
            slot = record["committed"]["slot"] if record else None
        except (OSError, ValueError, KeyError, TypeError):
            slot = None
        if slot not in ("A", "B"):
            raise _conflict(f"{unit.name} has no committed slot yet (never booted)")
        return str(slot)

    async def _apply_ControllerCrash(self, applied: Applied, units: list[TwinUnit]) -> None:
        raise _conflict(self.capabilities()["ControllerCrash"])

    # -- hot-swap ----------------------------------------------------------------------------

    def pull(self, slot: int) -> TwinUnit:
        """Take the board out of ``slot``; refused for an empty slot or one a fault holds."""
        unit = self.unit_in(slot)
        if not unit.present:
            raise _conflict(f"slot {slot} is already empty")
        holder = self._holder((unit.name, "power"))
        if holder is not None:
            raise _conflict(f"{unit.name} is held by {holder.kind} fault {holder.id!r}")
        self.rack.pull(unit.name)
        return unit

    def insert(self, slot: int) -> TwinUnit:
        """Put a board (back) into ``slot``; refused when the slot is occupied."""
        unit = self.unit_in(slot)
        if unit.present:
            raise _conflict(f"slot {slot} is occupied by {unit.name}")
        holder = self._holder((unit.name, "power"))
        if holder is not None:
            raise _conflict(
                f"slot {slot} was emptied by {holder.kind} fault {holder.id!r}: clear it instead"
            )
        self.rack.insert(unit.name)
        return unit

    def unit_in(self, slot: int) -> TwinUnit:
        for unit in self.rack.units.values():
            if unit.slot == slot:
                return unit
        raise FaultRefused(
            f"rack {self.rack.description.name} has no slot {slot} "
            f"(slots 1..{len(self.rack.units)})",
            404,
        )


def _cut(applied: Applied, unit: TwinUnit, why: str) -> None:
    """Cut one of the unit's supplies (it powers off and cannot power on until restored)."""
    unit.cuts.add(why)
    applied.undo.append(lambda: unit.cuts.discard(why))
    unit.power_off()


def _tap(unit: TwinUnit, sensor: str, mode: str, rate: float) -> Callable[[float], float]:
    """A reading filter for ``mode``: what a failing sensor chip puts on the bus."""
    clock = unit.clock
    stuck_at: list[float] = []
    began = clock.monotonic()

    def tap(value: float) -> float:
        if mode == "absent":
            raise OSError(6, f"{sensor} sensor does not answer (NACK)")
        if mode == "nan":
            return math.nan
        if mode == "drift":
            return value + rate * (clock.monotonic() - began)
        if not stuck_at:
            stuck_at.append(value)
        return stuck_at[0]

    return tap
