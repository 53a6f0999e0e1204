"""The Rack reconciler: sums its units' observed power, energy and running count.

It reads only the units' status (already observed by the ComputeUnit reconciler) and flags a
rack drawing more than its PSU is rated for. A rack's units are those labelled with its name
(``racklet.dev/rack``); units without the label are the controller's own rack's
(``rack_name``), so a second Rack in the same store counts none of them.
"""

from __future__ import annotations

from typing import Protocol

from racklet.api import ComputeUnit, Rack, rack_of, set_condition
from racklet.store import NotFound, Store


class RackObserver(Protocol):
    def rack(self, rack: Rack) -> None: ...


class RackReconciler:
    def __init__(
        self,
        store: Store,
        observer: RackObserver | None = None,
        *,
        controller: str = "",
        rack_name: str | None = None,
    ) -> None:
        self._store = store
        self._observer = observer
        self._controller = controller  # only the leader reconciles: it names itself
        self._home = rack_name  # the rack of units declared without a rack label

    async def reconcile(self, name: str) -> float | None:
        try:
            rack = await self._store.get(Rack, name)
        except NotFound:
            return None
        units = [u for u in await self._store.list(ComputeUnit) if rack_of(u, self._home) == name]
        status = rack.status.model_copy(deep=True)
        status.power_watts = round(sum(u.status.power_watts or 0.0 for u in units), 3)
        status.energy_joules = round(sum(u.status.energy_joules or 0.0 for u in units), 1)
        status.units_running = sum(1 for u in units if u.status.phase == "Running")
        status.leader = self._controller
        rated = rack.spec.psu_rated_watts
        if status.power_watts > rated:
            status.phase = "OverBudget"
            set_condition(
                status.conditions,
                "WithinBudget",
                "False",
                "OverBudget",
                f"drawing {status.power_watts:.2f} W of {rated:.2f} W rated",
                observed_generation=rack.metadata.generation,
            )
        else:
            status.phase = "Ready"
            set_condition(
                status.conditions,
                "WithinBudget",
                "True",
                "WithinBudget",
                f"drawing {status.power_watts:.2f} W of {rated:.2f} W rated",
                observed_generation=rack.metadata.generation,
            )
        if status != rack.status:
            rack.status = status
            rack = await self._store.update_status(rack)
        if self._observer is not None:
            self._observer.rack(rack)
        return None
