"""Secure boot: publish a signed payload, serve it, verify and boot it on a unit.

- publish side (``racklet up``): :func:`generate_signing_key`, :func:`build_default_payload`,
  :func:`publish`;
- the verification kernel (bytes in, verdict out): :func:`verify_manifest`,
  :func:`parse_agent_config`;
- ``racklet.boot.server``: the boot server app (``create_boot_app``);
- ``racklet.boot.client``: the unit's bootstrap client (``bootstrap``), which returns a
  :class:`BootedPayload` that the OS agent (``racklet.node``) runs from.

A TUF repository replaces the single manifest signature later; the kernel is where it goes.
"""

from racklet.boot._identity import unit_client_context, unit_server_context
from racklet.boot._manifest import AgentConfig, Manifest, parse_agent_config, verify_manifest
from racklet.boot._payload import MAX_PAYLOAD_BYTES, MIN_PAYLOAD_BYTES, build_default_payload
from racklet.boot._publish import generate_signing_key, publish
from racklet.boot._types import BootedPayload, BootLimits, TrustBundle, UnitIdentity
from racklet.boot.errors import (
    BootError,
    FetchError,
    ManifestError,
    PayloadError,
    PublishError,
    SignatureError,
    TrustError,
    VerificationError,
)

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MIN_PAYLOAD_BYTES",
    "AgentConfig",
    "BootError",
    "BootLimits",
    "BootedPayload",
    "FetchError",
    "Manifest",
    "ManifestError",
    "PayloadError",
    "PublishError",
    "SignatureError",
    "TrustBundle",
    "TrustError",
    "UnitIdentity",
    "VerificationError",
    "build_default_payload",
    "generate_signing_key",
    "parse_agent_config",
    "publish",
    "unit_client_context",
    "unit_server_context",
    "verify_manifest",
]
