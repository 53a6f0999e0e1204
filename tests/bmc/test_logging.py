"""Log lines of the BMC name the unit and the request they belong to."""

from __future__ import annotations

import logging

import pytest

from tests.bmc.conftest import UNIT, Bench


async def test_reset_is_logged_with_unit_and_request(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    target = f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset"
    with caplog.at_level(logging.DEBUG, logger="racklet.bmc"):
        async with bench.client() as client:
            await client.post(target, json={"ResetType": "On"})
    lines = [r for r in caplog.records if r.name == "racklet.bmc"]
    reset = [r for r in lines if "reset On" in r.getMessage()]
    assert reset, [r.getMessage() for r in lines]
    assert reset[0].unit == UNIT  # type: ignore[attr-defined]
    assert reset[0].request == f"POST {target}"  # type: ignore[attr-defined]
    assert all(getattr(r, "unit", None) == UNIT for r in lines)
