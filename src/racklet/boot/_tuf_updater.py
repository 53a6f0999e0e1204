"""python-tuf's ngclient ``Updater``, stricter about delegated roles; every Racklet TUF client
(the unit's bootstrap, the BMC's firmware verifier, the conformance CLI) uses this one.

What it changes, and why:

- **A delegated role is trusted per delegator.** ngclient keeps each delegated role it has
  verified in one map keyed by role name, and hands the cached role to whichever delegator
  names it next. Two delegators may delegate the same role name with different keys; a role
  fetched while resolving one target (verified with team A's keys) would then be reused,
  never verified, under team B's delegation — so a target signed only for A downloads under
  B. Here the role is verified again, against the keys and threshold of the delegator of the
  path being resolved, whenever that delegator differs from the one it was last verified
  under; bytes that B's keys did not sign are refused (``UnsignedMetadataError``). The
  reference client's own conformance suite marks this case as an expected failure.
- **Its cache directories are private whatever the umask.** ngclient makes
  ``root_history/`` with a plain ``mkdir``; it is made here first, 0700.

It overrides one private method of ngclient (``_load_targets``) and re-reads the role's bytes
through another (``_load_local_metadata``); ``tuf`` is pinned to one major version in
``pyproject.toml`` and ``tests/boot/test_tuf_delegation.py`` breaks if either changes meaning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from racklet.boot._tuf_api import Targets, Updater
from racklet.config import make_dir

__all__ = ["StrictUpdater"]


class StrictUpdater(Updater):  # type: ignore[misc]
    """ngclient's ``Updater`` that verifies a delegated role under every delegator that
    names it, not only under the first."""

    def __init__(self, metadata_dir: str, *args: Any, **kwargs: Any) -> None:
        make_dir(Path(metadata_dir) / "root_history")
        super().__init__(metadata_dir, *args, **kwargs)
        self._verified_by: dict[str, str] = {}
        """Delegated role name -> the delegator whose keys verified the cached copy."""

    def _load_targets(self, role: str, parent_role: str) -> Targets:
        last = self._verified_by.get(role)
        if last is not None and last != parent_role:
            # Cached under another delegator: the same bytes (ngclient persisted exactly what
            # it verified) must also carry this delegator's threshold of signatures.
            data = self._load_local_metadata(role)
            targets: Targets = self._trusted_set.update_delegated_targets(data, role, parent_role)
        else:
            targets = super()._load_targets(role, parent_role)
        self._verified_by[role] = parent_role
        return targets
