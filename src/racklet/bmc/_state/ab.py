"""The BMC's half of a unit's A/B update state: committed slot, trial, one-shot try-boot flag.

It lives in the BMC's storage (``bmc/<unit>/ab.json``), not on the unit, so wiping or
corrupting the unit's disk cannot lower the rollback counter or fake a commit. Every change
is written atomically (temp file, fsync, rename, fsync of the directory) before it is
acknowledged over the backplane link, so a power cut of the BMC leaves the old or the new
state, never a mix. The rules it enforces, whatever the unit asks:

- the one-shot flag is consumed by the next boot that reads it (as Raspberry Pi's
  ``tryboot``): a boot without the flag after a trial means the trial failed;
- a trial can only target the slot that is not committed, and a version below the rollback
  counter (the highest committed version) is refused;
- a commit is accepted only for the slot on trial, after its boot consumed the flag and
  within the trial's deadline (simulated seconds on the board's clock); it raises the
  counter, which never decreases.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from racklet.bmc.errors import BmcError, StateError
from racklet.config import write_atomic
from racklet.hw import Clock
from racklet.versions import below_floor, raised_floor

SLOTS = ("A", "B")
AB_FILE = "ab.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_DEADLINE = 3600.0


@dataclass(frozen=True)
class SlotRecord:
    """What a slot holds, as the unit declared it when the slot was complete."""

    slot: str
    version: str
    sha256: str


@dataclass(frozen=True)
class RecordedTrial:
    """A try-boot the BMC recorded for a unit (the unit's view: ``racklet.boot.TrialBoot``)."""

    slot: str
    version: str
    sha256: str
    deadline_seconds: float


@dataclass
class AbRecord:
    """The persisted state (``ab.json``)."""

    committed: SlotRecord | None = None
    trying: RecordedTrial | None = None
    tryboot: bool = False
    rollback_version: str | None = None
    rejected_version: str | None = None
    last_trial: dict[str, str] | None = None
    fallback: SlotRecord | None = None
    """The slot a commit moved away from: it still holds that version until a trial of
    the slot overwrites it (shown in the inventory, never booted by the A/B rules)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "committed": asdict(self.committed) if self.committed else None,
            "trying": _trial_json(self.trying) if self.trying else None,
            "tryboot": self.tryboot,
            "rollbackVersion": self.rollback_version,
            "rejectedVersion": self.rejected_version,
            "lastTrial": self.last_trial,
            "fallback": asdict(self.fallback) if self.fallback else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> AbRecord:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        committed, trying = data.get("committed"), data.get("trying")
        last, fallback = data.get("lastTrial"), data.get("fallback")
        return cls(
            committed=SlotRecord(**committed) if committed else None,
            trying=_trial(trying) if trying else None,
            tryboot=bool(data.get("tryboot", False)),
            rollback_version=_optional_str(data.get("rollbackVersion")),
            rejected_version=_optional_str(data.get("rejectedVersion")),
            last_trial={str(k): str(v) for k, v in last.items()}
            if isinstance(last, dict)
            else None,
            fallback=SlotRecord(**fallback) if fallback else None,
        )


def _trial_json(trial: RecordedTrial) -> dict[str, Any]:
    return {
        "slot": trial.slot,
        "version": trial.version,
        "sha256": trial.sha256,
        "deadlineSeconds": trial.deadline_seconds,
    }


def _trial(data: dict[str, Any]) -> RecordedTrial:
    return RecordedTrial(
        data["slot"], data["version"], data["sha256"], float(data["deadlineSeconds"])
    )


def _optional_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _field(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise BmcError(f"the request needs a {name!r} string")
    return value


def _slot_fields(request: dict[str, Any]) -> tuple[str, str, str]:
    slot, version, sha256 = (_field(request, n) for n in ("slot", "version", "sha256"))
    if slot not in SLOTS:
        raise BmcError(f"unknown slot {slot!r} (A or B)")
    if not _SHA256.fullmatch(sha256):
        raise BmcError("sha256 must be 64 lower-case hex digits")
    return slot, version, sha256


class AbState:
    """One unit's A/B state; every method is blocking (file I/O): call it off the loop."""

    def __init__(self, state_dir: Path, clock: Clock) -> None:
        self._path = state_dir / AB_FILE
        self._clock = clock
        self._trial_started: float | None = None

    def load(self) -> AbRecord:
        try:
            text = self._path.read_text()
        except FileNotFoundError:
            return AbRecord()
        except OSError as exc:
            raise StateError(f"cannot read the A/B state: {exc}") from exc
        try:
            return AbRecord.from_json(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise StateError(f"{AB_FILE} is malformed: {exc}") from exc

    def _save(self, record: AbRecord) -> None:
        try:
            write_atomic(self._path, json.dumps(record.to_json(), indent=2) + "\n", mode=0o600)
        except OSError as exc:
            raise StateError(f"cannot persist the A/B state: {exc}") from exc

    def _answer(self, record: AbRecord, **extra: Any) -> dict[str, Any]:
        return {**record.to_json(), **extra}

    def read(self, consume: bool) -> dict[str, Any]:
        """The state; with ``consume`` (a boot reads it) also the boot mode, consuming the flag.

        ``mode`` is ``try`` (boot the trial slot once), ``committed`` or ``empty``.
        """
        record = self.load()
        if not consume:
            return self._answer(record)
        if record.tryboot and record.trying is not None:
            record.tryboot = False
            self._save(record)
            self._trial_started = self._clock.monotonic()
            return self._answer(record, mode="try")
        self._trial_started = None
        if record.trying is not None or record.tryboot:
            failed = record.trying
            record.trying, record.tryboot = None, False
            if failed is not None:
                record.rejected_version = failed.version
                record.last_trial = {
                    "slot": failed.slot,
                    "version": failed.version,
                    "result": "failed",
                    "reason": "the trial boot did not commit; fell back to the committed slot",
                }
            self._save(record)
        return self._answer(record, mode="committed" if record.committed else "empty")

    def _check_rollback(self, record: AbRecord, version: str) -> None:
        floor = record.rollback_version
        if below_floor(version, floor):
            raise BmcError(
                f"rollback protection: version {version} is below the committed version {floor}"
            )

    def set_tryboot(self, request: dict[str, Any]) -> dict[str, Any]:
        slot, version, sha256 = _slot_fields(request)
        deadline = request.get("deadlineSeconds")
        valid = isinstance(deadline, int | float) and not isinstance(deadline, bool)
        if not valid or not 0 < float(deadline) <= _MAX_DEADLINE:  # type: ignore[arg-type]
            raise BmcError(f"deadlineSeconds must be in (0, {_MAX_DEADLINE:g}]")
        record = self.load()
        if record.committed is None:
            raise BmcError("no slot is committed yet: commit the first install directly")
        if slot == record.committed.slot:
            raise BmcError(f"slot {slot} is the committed slot; only the other one can be tried")
        self._check_rollback(record, version)
        record.trying = RecordedTrial(slot, version, sha256, float(deadline))  # type: ignore[arg-type]
        record.tryboot = True
        if record.fallback is not None and record.fallback.slot == slot:
            record.fallback = None  # the trial's image is in that slot now
        self._save(record)
        return self._answer(record)

    def clear_tryboot(self) -> dict[str, Any]:
        record = self.load()
        if record.tryboot or record.trying is not None:
            record.tryboot, record.trying = False, None
            self._save(record)
        return self._answer(record)

    def commit(self, request: dict[str, Any]) -> dict[str, Any]:
        slot, version, sha256 = _slot_fields(request)
        record = self.load()
        self._check_rollback(record, version)
        if record.committed is None and record.trying is None:
            pass  # the first install: nothing to fall back to, nothing to try
        else:
            trial = record.trying
            if trial is None or record.tryboot or self._trial_started is None:
                raise BmcError(f"slot {slot} is not on a trial boot; nothing to commit")
            if (trial.slot, trial.version, trial.sha256) != (slot, version, sha256):
                raise BmcError(
                    f"the trial is slot {trial.slot} version {trial.version}, "
                    f"not slot {slot} version {version}"
                )
            elapsed = self._clock.monotonic() - self._trial_started
            if elapsed > trial.deadline_seconds:
                raise BmcError(
                    f"the trial's health deadline of {trial.deadline_seconds:g} s has passed"
                )
            record.last_trial = {"slot": slot, "version": version, "result": "committed"}
        if record.committed is not None and record.committed.slot != slot:
            record.fallback = record.committed
        record.committed = SlotRecord(slot, version, sha256)
        record.trying, record.tryboot = None, False
        record.rejected_version = None
        record.rollback_version = raised_floor(record.rollback_version, version)
        self._save(record)
        self._trial_started = None
        return self._answer(record)
