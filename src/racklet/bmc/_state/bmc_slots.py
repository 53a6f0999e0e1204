"""The BMC's own firmware in two slots (A/B), with a one-shot try-boot and a commit.

The same rules as a unit's A/B boot: a verified image is written to the *inactive* slot
(atomically, 0600); a reset try-boots it once (the one-shot flag is cleared *before* the
new firmware starts, so a crash or power cut during the try lands on the committed slot);
the running BMC commits it only after its self-test passes, otherwise it falls back to the
committed slot by itself. The committed version is the rollback floor
(:mod:`racklet.versions`): an image below it is refused, whatever its signature. It rises on
commit only, so a build that failed its trial does not block an older one that works.

State (``<state_dir>/bmc-firmware/``): ``slot-A.img``, ``slot-B.img`` and ``state.json``::

    {"committed": "A", "versions": {"A": "0.1.0", "B": "0.2.0"},
     "tryboot": "B" | null, "trying": "B" | null, "failed": {"B": "self-test: ..."}}

In the twin an image is a *manifest* (:func:`parse_manifest`): JSON naming its version and an
opaque payload. Its only effect is the version the BMC reports; the BMC's code does not
change, and nothing in an image decides how its self-test ends (a ``selfTest`` key of older
images is ignored).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from racklet.bmc.errors import ImageRejected, StateError
from racklet.config import make_dir, write_private
from racklet.versions import below_floor, newer

DIRECTORY = "bmc-firmware"
STATE_FILE = "state.json"
MANIFEST_FORMAT = "racklet-bmc-firmware/1"
MAX_MANIFEST = 8 * 1024 * 1024
SlotName = Literal["A", "B"]
_SLOTS: tuple[SlotName, SlotName] = ("A", "B")


@dataclass(frozen=True)
class FirmwareSlotManifest:
    """A BMC firmware image as the twin models it."""

    version: str
    payload: bytes


def build_manifest(version: str, payload: bytes) -> bytes:
    """The bytes of a firmware image (what is published on the ``bmc-firmware`` channel)."""
    body = {
        "format": MANIFEST_FORMAT,
        "version": version,
        "payload": base64.b64encode(payload).decode(),
    }
    return json.dumps(body, sort_keys=True).encode()


def parse_manifest(data: bytes) -> FirmwareSlotManifest:
    """The manifest in ``data``, or ``ImageRejected`` saying what is wrong with it."""
    if len(data) > MAX_MANIFEST:
        raise ImageRejected("the image is larger than a BMC firmware manifest may be")
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise ImageRejected(f"not a BMC firmware image ({MANIFEST_FORMAT} JSON)") from exc
    if not isinstance(body, dict) or body.get("format") != MANIFEST_FORMAT:
        raise ImageRejected(f"not a BMC firmware image (format is not {MANIFEST_FORMAT})")
    version, payload = body.get("version"), body.get("payload")
    if not isinstance(version, str) or not version or not isinstance(payload, str):
        raise ImageRejected("the BMC firmware manifest needs a version and a payload")
    try:
        raw = base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise ImageRejected("the BMC firmware payload is not base64") from exc
    return FirmwareSlotManifest(version, raw)


@dataclass
class _State:
    committed: SlotName = "A"
    versions: dict[str, str] = field(default_factory=dict)
    tryboot: SlotName | None = None
    trying: SlotName | None = None
    failed: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "committed": self.committed,
            "versions": self.versions,
            "tryboot": self.tryboot,
            "trying": self.trying,
            "failed": self.failed,
        }


def _slot(value: Any) -> SlotName | None:
    if value is None:
        return None
    if value not in _SLOTS:
        raise StateError(f"bmc-firmware state names slot {value!r}, not A or B")
    return value  # type: ignore[no-any-return]


def _other(slot: SlotName) -> SlotName:
    return "B" if slot == "A" else "A"


class BmcFirmwareSlots:
    """The two firmware slots of one BMC. Blocking file I/O: call from a worker thread,
    except the read-only properties, which use what :meth:`boot` loaded."""

    def __init__(self, state_dir: Path, factory_version: str) -> None:
        self.directory = state_dir / DIRECTORY
        self._factory = factory_version
        self._state = _State(versions={"A": factory_version})
        self.running: SlotName = "A"
        self.manifest: FirmwareSlotManifest | None = None
        """The manifest of the running slot (None: the factory image)."""

    # -- reading ----------------------------------------------------------------------------

    @property
    def committed(self) -> SlotName:
        return self._state.committed

    @property
    def trying(self) -> SlotName | None:
        """The slot running on trial (not committed yet), if any."""
        return self._state.trying

    @property
    def running_version(self) -> str:
        return self.version(self.running) or self._factory

    @property
    def committed_version(self) -> str:
        return self.version(self._state.committed) or self._factory

    def version(self, slot: str) -> str | None:
        return self._state.versions.get(slot)

    def failure(self, slot: str) -> str | None:
        return self._state.failed.get(slot)

    @property
    def standby(self) -> SlotName:
        return _other(self.running)

    def _load(self) -> _State:
        path = self.directory / STATE_FILE
        try:
            body = json.loads(path.read_text())
        except FileNotFoundError:
            return _State(versions={"A": self._factory})
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read {path}: {exc}") from exc
        try:
            return _State(
                committed=_slot(body["committed"]) or "A",
                versions={str(k): str(v) for k, v in dict(body["versions"]).items()},
                tryboot=_slot(body.get("tryboot")),
                trying=_slot(body.get("trying")),
                failed={str(k): str(v) for k, v in dict(body.get("failed") or {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{path} is malformed: {exc}") from exc

    def _save(self) -> None:
        write_private(self.directory / STATE_FILE, json.dumps(self._state.to_json()) + "\n")

    # -- the boot loader ----------------------------------------------------------------------

    def boot(self) -> SlotName:
        """Pick the slot this start runs, as a boot loader would, and load its manifest.

        A pending try-boot flag is consumed (and persisted) first: it works once. A slot
        still marked ``trying`` without the flag never committed: it is recorded as failed.
        """
        make_dir(self.directory)
        state = self._load()
        if state.tryboot is not None:
            state.trying, state.tryboot = state.tryboot, None
        elif state.trying is not None:
            state.failed[state.trying] = "did not commit before the BMC restarted"
            state.trying = None
        self._state = state
        self._save()
        self.running = state.trying or state.committed
        self.manifest = self._read_manifest(self.running)
        return self.running

    def _read_manifest(self, slot: SlotName) -> FirmwareSlotManifest | None:
        path = self.directory / f"slot-{slot}.img"
        if not path.exists():
            return None
        try:
            return parse_manifest(path.read_bytes())
        except (OSError, ImageRejected) as exc:
            raise StateError(f"firmware slot {slot} is unreadable: {exc}") from exc

    # -- update -------------------------------------------------------------------------------

    def install(self, image: Path, verified_version: str) -> SlotName | None:
        """Write a verified image to the standby slot; the slot written, or None when the BMC
        already runs this version or has it armed for its next start (a repeated push is a
        no-op: it neither rewrites a slot nor restarts the BMC again)."""
        try:
            manifest = parse_manifest(image.read_bytes())
        except OSError as exc:
            raise ImageRejected(f"cannot read the stored image: {exc}") from exc
        if manifest.version != verified_version:
            raise ImageRejected(
                f"the manifest says {manifest.version}, its signed target {verified_version}"
            )
        armed = self._state.tryboot
        if verified_version == self.running_version or (
            armed is not None and self.version(armed) == verified_version
        ):
            return None
        floor = self.committed_version
        if below_floor(verified_version, floor):
            raise ImageRejected(
                f"version {verified_version} is below the committed {floor} (rollback refused)"
            )
        slot = self.standby
        if slot == self._state.committed:
            raise ImageRejected("the committed firmware is on trial; wait for it to commit")
        write_private(self.directory / f"slot-{slot}.img", image.read_bytes())
        self._state.versions[slot] = verified_version
        self._state.failed.pop(slot, None)
        self._state.tryboot = None
        self._save()
        return slot

    def arm_tryboot(self) -> SlotName | None:
        """Set the one-shot flag for the standby slot if it holds a newer, untried image."""
        slot = self.standby
        version = self.version(slot)
        if (
            version is None
            or slot in self._state.failed
            or slot == self._state.committed
            or not newer(version, self.committed_version)
        ):
            return None
        self._state.tryboot = slot
        self._save()
        return slot

    def commit(self) -> None:
        """The trial slot passed its self-test: it becomes the committed one."""
        if self._state.trying is None:
            return
        self._state.committed, self._state.trying = self._state.trying, None
        self._save()

    def fail(self, reason: str) -> None:
        """The trial slot failed its self-test: the next start runs the committed slot."""
        if self._state.trying is None:
            return
        self._state.failed[self._state.trying] = reason
        self._state.trying = None
        self._state.tryboot = None
        self._save()
