"""DMTF's Redfish Interop Validator, run as a user runs it, and its report read back.

The validator (``rf_interop_validator``, from the ``redfish-interop-validator`` package) walks
a live service and checks it against an OCP profile (vendored in ``tests/redfish/profiles``).
We run its console script as a subprocess and read its Excel report rather than its exit
code: the report names every failing resource and property, which a test failure should show.

Trust: like the service validator, the interop validator's ``redfish`` client connects with
``verify=False`` and has no CA option, so it does not check the certificate.

Runnable by hand against any service, e.g. the RMC of ``python -m tests.rmc.conftest``::

    python -m tests.redfish.interop https://127.0.0.1:PORT admin PASSWORD OCPServiceBaseline.v1_0_0
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import openpyxl

PROFILES = Path(__file__).resolve().parent / "profiles"
BIN = Path(sys.executable).parent

BMC_PROFILES = (
    "OCPBaselineHardwareManagement.v1_1_0",
    "OCPBaselineHardwareManagement.v1_0_2",
    "OCPServiceBaseline.v1_0_0",
)
RMC_PROFILES = ("OCPRackManagerController.v1_1_0.corrected", "OCPServiceBaseline.v1_0_0")


@dataclass(frozen=True)
class Finding:
    """One row of the report: a resource type (``uri`` empty) or a property of one resource."""

    uri: str
    resource: str
    prop: str
    result: str
    message: str

    def __str__(self) -> str:
        where = f"{self.uri} {self.prop}" if self.uri else self.resource
        return f"{self.result} {where}: {self.message.split(';', 1)[0]}"


@dataclass(frozen=True)
class InteropReport:
    profile: str
    summary: dict[str, int]
    findings: list[Finding]
    log: str

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.result == "FAIL"]

    def failures_text(self) -> str:
        return "\n".join(str(f) for f in self.failures)


async def run_interop(
    url: str, user: str, password: str, profile: str, workdir: Path
) -> InteropReport:
    """Run the validator with ``profile`` (a file name in :data:`PROFILES`, without ``.json``)."""
    logdir = workdir / f"interop-{profile}"
    console = workdir / f"interop-{profile}.log"
    with console.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "rf_interop_validator"),
            *("-r", url, "-u", user, "-p", password, "--authtype", "Session"),
            *("--logdir", str(logdir), str(PROFILES / f"{profile}.json")),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(os.environ),
        )
        await asyncio.wait_for(process.wait(), timeout=600)
    log = console.read_text()
    reports = list(logdir.glob("*/*.xlsx"))
    if len(reports) != 1:
        raise AssertionError(f"the interop validator wrote no report:\n{log[-3000:]}")
    return _read(reports[0], profile, log)


def _read(path: Path, profile: str, log: str) -> InteropReport:
    book = openpyxl.load_workbook(path, read_only=True)
    summary: dict[str, int] = {}
    for row in book["Summary"].iter_rows(values_only=True):
        if row and row[0] in ("Pass", "Warning", "Warn", "Fail", "Not Tested", "Skip"):
            summary[str(row[0])] = int(row[1] or 0)
    findings = [
        Finding("", str(row[1]), "", str(row[2]), str(row[3] or ""))
        for row in book["Resources"].iter_rows(min_row=2, values_only=True)
        if row and row[1]
    ]
    findings += [
        Finding(str(row[1]), str(row[4]), str(row[5]), str(row[7]), str(row[8] or ""))
        for row in book["Results"].iter_rows(min_row=2, values_only=True)
        if row and row[1]
    ]
    return InteropReport(profile, summary, findings, log)


async def _main(url: str, user: str, password: str, profile: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report = await run_interop(url, user, password, profile, Path(tmp))
    print(report.summary)
    print(report.failures_text())


if __name__ == "__main__":
    asyncio.run(_main(*sys.argv[1:5]))
