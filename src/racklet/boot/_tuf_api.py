"""The python-tuf and securesystemslib names Racklet uses, imported in one place.

Both libraries re-export these names from their public modules without ``__all__``, which
strict mypy reports; importing them here once keeps that noise out of every other module.
"""

from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]
from tuf.api.metadata import (  # type: ignore[attr-defined]
    DelegatedRole,
    Delegations,
    Key,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig  # type: ignore[attr-defined]

__all__ = [
    "CryptoSigner",
    "DelegatedRole",
    "Delegations",
    "FetcherInterface",
    "Key",
    "MetaFile",
    "Metadata",
    "Root",
    "Snapshot",
    "TargetFile",
    "Targets",
    "Timestamp",
    "Updater",
    "UpdaterConfig",
]
