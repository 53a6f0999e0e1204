"""Secure boot: a TUF repository on the management side, verified boots on the units.

- publish side (the controller, ``racklet up``): :class:`TufRepository` (``create``, ``open``,
  ``publish``, ``list``, ``rotate_key``), :func:`refresh_timestamp` (call periodically),
  :func:`ensure_boot_repository` (what ``racklet up`` prepares), :func:`build_default_payload`;
- ``racklet.boot.server``: the boot server app (``create_boot_app``), serving the repository's
  metadata and targets under ``/boot/v1/`` over mutual TLS;
- :class:`BulkTargetServer`: large targets at ``/boot/v1/targets/`` on their own mutual-TLS
  port, written by one selector thread straight onto the sockets (as an nginx worker does);
- ``racklet.boot.client``: the unit's bootstrap client (``bootstrap``), python-tuf's ngclient
  anchored in the TUF root its BMC holds; it returns a :class:`BootedPayload` that the OS agent
  (``racklet.node``) runs from;
- peer-to-peer distribution inside the rack (``_p2p``): a unit's agent serves the payload it
  runs under :data:`P2P_PREFIX`; the bootstrap fetches pieces from such :class:`Peer` units;
- a payload a BMC holds (a Redfish push) rather than one the unit downloads:
  :func:`verify_held_payload` and :func:`install_held_payload`, the bootstrap's checks and
  slot install (``_held``);
- ``racklet.boot.tuf_client``: the command line of the TUF client conformance suite.
"""

from racklet.boot._bulk_server import BulkLimits, BulkTargetServer
from racklet.boot._default_repo import ensure_boot_repository
from racklet.boot._held import install_held_payload, verify_held_payload
from racklet.boot._identity import (
    controller_identity,
    unit_client_context,
    unit_live_server_context,
    unit_server_context,
)
from racklet.boot._manifest import AgentConfig, PayloadManifest, parse_agent_config
from racklet.boot._p2p import P2P_PREFIX, Peer, slot_payload
from racklet.boot._payload import MAX_PAYLOAD_BYTES, MIN_PAYLOAD_BYTES, build_default_payload
from racklet.boot._tuf_client import fetch_verified_target
from racklet.boot._tuf_repo import (
    Expiry,
    PublishedRelease,
    ReleaseFile,
    TufRepository,
    refresh_timestamp,
)
from racklet.boot._types import (
    DEFAULT_CHANNEL,
    BootedPayload,
    BootLimits,
    TrialBoot,
    TrustBundle,
    UnitIdentity,
)
from racklet.boot.errors import (
    BootError,
    FetchError,
    ManifestError,
    MetadataError,
    PayloadError,
    PublishError,
    RepositoryError,
    RollbackError,
    SignatureError,
    TrustError,
    VerificationError,
)
from racklet.versions import version_key  # the one ordering, re-exported

__all__ = [
    "DEFAULT_CHANNEL",
    "MAX_PAYLOAD_BYTES",
    "MIN_PAYLOAD_BYTES",
    "P2P_PREFIX",
    "AgentConfig",
    "BootError",
    "BootLimits",
    "BootedPayload",
    "BulkLimits",
    "BulkTargetServer",
    "Expiry",
    "FetchError",
    "ManifestError",
    "MetadataError",
    "PayloadError",
    "PayloadManifest",
    "Peer",
    "PublishError",
    "PublishedRelease",
    "ReleaseFile",
    "RepositoryError",
    "RollbackError",
    "SignatureError",
    "TrialBoot",
    "TrustBundle",
    "TrustError",
    "TufRepository",
    "UnitIdentity",
    "VerificationError",
    "build_default_payload",
    "controller_identity",
    "ensure_boot_repository",
    "fetch_verified_target",
    "install_held_payload",
    "parse_agent_config",
    "refresh_timestamp",
    "slot_payload",
    "unit_client_context",
    "unit_live_server_context",
    "unit_server_context",
    "verify_held_payload",
    "version_key",
]
