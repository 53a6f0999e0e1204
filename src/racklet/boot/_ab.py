"""The unit's view of its A/B state, as its BMC answers the link's ``ab`` operation.

Parsing and the update decision only: no I/O. The BMC enforces the same rules again (it
refuses a try-boot or commit below the rollback counter), so a unit that got this wrong still
could not lower the counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from racklet.boot.errors import TrustError
from racklet.versions import below_floor, newer

MODES = ("try", "committed", "empty")


@dataclass(frozen=True)
class SlotRef:
    slot: str
    version: str
    sha256: str

    @classmethod
    def parse(cls, value: Any, what: str) -> SlotRef | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise TrustError(f"the BMC's A/B state has a malformed {what}")
        fields = [value.get(k) for k in ("slot", "version", "sha256")]
        if not all(isinstance(f, str) and f for f in fields) or fields[0] not in ("A", "B"):
            raise TrustError(f"the BMC's A/B state has a malformed {what}")
        slot, version, sha256 = (str(f) for f in fields)
        return cls(slot, version, sha256)


@dataclass(frozen=True)
class AbView:
    """What this boot must do: ``mode`` and the slots behind it."""

    mode: str
    committed: SlotRef | None
    trying: SlotRef | None
    rollback_version: str | None
    rejected_version: str | None

    @classmethod
    def from_link(cls, answer: dict[str, Any]) -> AbView:
        mode = answer.get("mode")
        if mode not in MODES:
            raise TrustError(f"the BMC's A/B state names an unknown boot mode {mode!r}")
        committed = SlotRef.parse(answer.get("committed"), "committed slot")
        trying = SlotRef.parse(answer.get("trying"), "trial slot")
        if mode == "try" and trying is None:
            raise TrustError("the BMC asks for a try-boot but names no trial slot")
        if mode == "committed" and committed is None:
            raise TrustError("the BMC names no committed slot")
        floor, rejected = answer.get("rollbackVersion"), answer.get("rejectedVersion")
        if floor is not None and not isinstance(floor, str):
            raise TrustError("the BMC's rollback counter is malformed")
        if rejected is not None and not isinstance(rejected, str):
            raise TrustError("the BMC's rejected version is malformed")
        return cls(str(mode), committed, trying, floor, rejected)

    def below_floor(self, version: str) -> bool:
        """Whether booting ``version`` would be a rollback below the committed version."""
        return below_floor(version, self.rollback_version)

    def wants(self, version: str) -> bool:
        """Whether the channel's ``version`` is an update to try (newer, not failed before)."""
        if self.committed is None:
            return True
        return newer(version, self.committed.version) and version != self.rejected_version
