"""GitOps: the rack's desired state from a Git repository, applied commit by commit.

A manifest set is parsed and validated as a whole before anything is written; a GitSource
reconciler applies it through a small :class:`Applier` interface, prunes what Git no longer
declares, reverts manual drift and reports all of it in the source's status and in events.
"""

from racklet.gitops._applier import Applier, StoreApplier
from racklet.gitops._git import Location, Repository, fingerprint
from racklet.gitops._manifests import ManifestDocument, known_kinds, load_manifests, read_paths
from racklet.gitops._plan import OWNER_LABEL, differences, owned, owner_of, updated
from racklet.gitops._reconciler import SYNC_ANNOTATION, GitSourceReconciler, Outcome
from racklet.gitops._starter import StarterUnit, starter_files, write_starter
from racklet.gitops._watch import GitSourceWatcher
from racklet.gitops.errors import (
    ApplyConflict,
    ApplyError,
    GitOpsError,
    InvalidManifests,
    SourceError,
)

__all__ = [
    "OWNER_LABEL",
    "SYNC_ANNOTATION",
    "Applier",
    "ApplyConflict",
    "ApplyError",
    "GitOpsError",
    "GitSourceReconciler",
    "GitSourceWatcher",
    "InvalidManifests",
    "Location",
    "ManifestDocument",
    "Outcome",
    "Repository",
    "SourceError",
    "StarterUnit",
    "StoreApplier",
    "differences",
    "fingerprint",
    "known_kinds",
    "load_manifests",
    "owned",
    "owner_of",
    "read_paths",
    "starter_files",
    "updated",
    "write_starter",
]
