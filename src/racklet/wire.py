"""Wire vocabulary both sides speak: names and payload shapes that travel between them.

The management side builds these payloads and the hardware side checks them, so they live
here, below both, rather than in either side's package (the controller never imports
``racklet.bmc``; the BMC never imports the controller). Only shapes and names live here: no
trust decision (the BMC's :mod:`racklet.bmc._tuf_verifier` makes that) and no I/O beyond
reading the served TUF metadata a push carries.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, get_args

FaultKind = Literal[
    "BusbarOutage",
    "BrownOut",
    "PowerLoss",
    "Partition",
    "LinkDegradation",
    "BmcHang",
    "BmcReboot",
    "SensorFailure",
    "StorageCorruption",
    "SlotPull",
    "ControllerCrash",
]
"""The fault kinds a ``Fault`` declares and the hardware side's fault engine carries out."""
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
RACK_WIDE_FAULTS: tuple[FaultKind, ...] = ("BusbarOutage", "BrownOut", "ControllerCrash")
"""Fault kinds that hit the whole rack and so take no selector."""

FIRMWARE_CHANNEL = "bmc-firmware"
"""The TUF release channel (a delegated targets role) of BMC firmware images."""

_ROOT_NAME = re.compile(r"([0-9]{1,9})\.root\.json")


def firmware_oem_parameters(metadata_dir: Path, target_path: str) -> dict[str, Any]:
    """The ``OemParameters`` a pusher sends with ``target_path``: the repository's current
    metadata (from its served ``metadata_dir``), every root version past the first included
    so a BMC with an older root can follow the rotations. The channel role is the one the
    target path starts with: ``bmc-firmware`` for BMC firmware, the unit's channel (e.g.
    ``stable``) for a unit OS payload."""
    channel = target_path.partition("/")[0] or FIRMWARE_CHANNEL
    timestamp = json.loads((metadata_dir / "timestamp.json").read_text())
    snapshot_version = timestamp["signed"]["meta"]["snapshot.json"]["version"]
    snapshot_name = f"{snapshot_version}.snapshot.json"
    snapshot = json.loads((metadata_dir / snapshot_name).read_text())
    files: dict[str, Any] = {"timestamp.json": timestamp, snapshot_name: snapshot}
    for role in ("targets", channel):
        name = f"{snapshot['signed']['meta'][f'{role}.json']['version']}.{role}.json"
        files[name] = json.loads((metadata_dir / name).read_text())
    for path in metadata_dir.glob("*.root.json"):
        match = _ROOT_NAME.fullmatch(path.name)
        if match and int(match.group(1)) > 1:
            files[path.name] = json.loads(path.read_text())
    return {"Racklet": {"TargetPath": target_path, "TufMetadata": files}}
