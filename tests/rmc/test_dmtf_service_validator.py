"""DMTF's service validator walks the whole rack through the RMC: its own resources and
every BMC's behind it, each checked against the DMTF schemas. 0 FAIL; each WARN is listed
with its reason in docs/redfish.md (as for the BMC, ``tests/bmc/test_dmtf_validators.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import openpyxl
import pytest

from tests.bmc.test_dmtf_validators import BIN, CSDL, _documented_warnings, _run
from tests.rmc.conftest import ADMIN, Rack

pytestmark = [
    pytest.mark.skipif(not CSDL.is_dir(), reason=f"the DMTF CSDL schemas are not at {CSDL}"),
    pytest.mark.timeout(900),
]


async def test_service_validator_finds_no_failure_through_the_rmc(
    rack: Rack, tmp_path: Path
) -> None:
    logdir = tmp_path / "service-report"
    await _run(
        [
            str(BIN / "rf_service_validator"),
            *("-r", rack.url, "-u", ADMIN[0], "-p", ADMIN[1], "--authtype", "Session"),
            *("--schema_directory", str(CSDL), "--skipschema", "--logdir", str(logdir)),
        ],
        dict(os.environ),
        tmp_path / "service.log",
    )
    reports = list(logdir.glob("*/*.xlsx"))
    assert len(reports) == 1, (tmp_path / "service.log").read_text()[-3000:]
    book = openpyxl.load_workbook(reports[0], read_only=True)
    rows = [row for row in book["Results"].iter_rows(min_row=2, values_only=True)]
    uris = {row[1] for row in rows}
    failures = [row for row in rows if row[7] == "FAIL"]
    warnings = {f"{row[4]}: {row[5]}" for row in rows if row[7] == "WARN"}
    assert not failures, "\n".join(f"{r[1]} {r[5]}: {r[8]}" for r in failures)
    for path in (
        "/Chassis/rack/Power",
        "/Chassis/rack/Thermal",
        "/Managers/rmc/NetworkProtocol",
        "/EventService",
        "/UpdateService",
        "/Systems/unit-1_unit-1",
    ):
        assert f"/redfish/v1{path}" in uris, f"the walk missed {path}"
    undocumented = warnings - _documented_warnings()
    assert not undocumented, f"undocumented WARN in docs/redfish.md: {sorted(undocumented)}"
