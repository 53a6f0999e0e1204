"""The System body built fast (its fixed part dumped once, the unit's state read each GET) is
the declared body, key for key and in order, whatever the state: so its ETag is the one the
full declaration would give, and a PATCH's If-Match holds."""

from __future__ import annotations

from pathlib import Path

from racklet.bmc._resources.systems.system import SystemResource
from tests.bmc.twin_bench import UNIT, running_twin_bmc


def _same(resource: SystemResource) -> None:
    fast = resource.body()
    full = resource.declared().body(resource.ctx.system_path)
    assert fast == full
    assert list(fast) == list(full)
    assert list(fast["Boot"]) == list(full["Boot"])


async def test_the_fast_body_is_the_declared_body_as_the_state_changes(tmp_path: Path) -> None:
    async with running_twin_bmc(tmp_path / "rack") as twin:
        resource = SystemResource(twin.service.context)
        _same(resource)  # the first builds the fixed part
        resource.override.apply("Pxe", "Once")
        _same(resource)
        twin.rack.board(UNIT).power_switch.set(True)
        _same(resource)
        resource.override.apply("None", "Disabled")
        twin.rack.board(UNIT).power_switch.set(False)
        _same(resource)
        assert resource.body() is not resource.body()  # each GET its own dict
