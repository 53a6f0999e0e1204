"""Release versions: the one ordering, and the rollback floor built on it.

Every part of a rack that compares versions uses this module: a unit deciding whether its
channel's release is an update (``racklet.boot``), the BMC's rollback counter for its unit
and the floor of its own firmware (``racklet.bmc``), and the controller. It imports nothing
of Racklet, so ``boot``, ``bmc`` and ``controller`` can all use it without crossing the import
contracts.

The order: a version is dot/dash/plus/underscore separated parts, numbers compared
numerically and before text (``0.9.0 < 0.10.0 < 1.0.0``). A label ``<name> <version>`` (a
factory firmware string such as ``racklet-bmc 0.1.0``) compares by its last word, and a
leading ``v`` before a digit is ignored (``v1.2`` is ``1.2``). Something with no version
number at all (``racklet-bmc test``) orders below every version, so any release replaces it.

The floor (:func:`below_floor`, :func:`raised_floor`): rollback protection refuses a version
below the highest one *committed* (booted and passed its health check or self-test). A floor
rises on commit only, never when an image is merely verified, staged or tried: a trial that
fails must not block an older release that works.

Deliberately not here: semantic-version pre-release rules (``1.0.0-rc1`` orders *after*
``1.0.0`` here, as it always has for units; publish pre-releases on their own channel).
"""

from __future__ import annotations

import re

VersionKey = tuple[tuple[int, int | str], ...]
_SEPARATORS = re.compile(r"[.+_-]")


def version_key(version: str) -> VersionKey:
    """The sort key of ``version`` (see the module docstring for the order)."""
    words = version.split()
    last = words[-1] if words else ""
    if last[:1] in ("v", "V") and last[1:2].isdigit():
        last = last[1:]
    if not last[:1].isdigit():
        return ()
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _SEPARATORS.split(last))


def newer(version: str, than: str) -> bool:
    """Whether ``version`` orders strictly after ``than``."""
    return version_key(version) > version_key(than)


def below_floor(version: str, floor: str | None) -> bool:
    """Whether installing ``version`` would be a rollback below the committed ``floor``."""
    return floor is not None and version_key(version) < version_key(floor)


def raised_floor(floor: str | None, committed: str) -> str:
    """The floor after ``committed`` was committed: it only ever goes up."""
    if floor is None or newer(committed, floor):
        return committed
    return floor
