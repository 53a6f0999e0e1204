"""Boot errors: what went wrong, named by who is to blame::

    BootError                   anything on the boot path
    ├── PublishError            caller misuse on the publish side (bad size, key, version)
    ├── RepositoryError         the TUF repository on disk is missing, unreadable or inconsistent
    ├── TrustError              the BMC could not hand over a usable trust bundle or identity
    ├── FetchError              transport: boot server unreachable, HTTP error, timeout
    └── VerificationError       remote data is not what the signed TUF metadata promises
        ├── SignatureError      metadata not signed by a threshold of trusted keys
        ├── MetadataError       TUF metadata expired (freeze), rolled back, inconsistent
        │                       (mix-and-match), malformed or too long (endless data)
        ├── ManifestError       a verified release pointer that is malformed or out of limits
        ├── PayloadError        a target's length or SHA-256 differs, or its content is bad
        └── RollbackError       a TUF-valid release older than the unit's committed version

Every message is one line: the bootstrap client prints it on the console and sends it to the
BMC as the ``failed`` reason.
"""

from racklet.errors import RackletError


class BootError(RackletError):
    """The boot path failed; nothing unverified was booted."""


class PublishError(BootError):
    """A payload or key could not be published (invalid input or an unwritable repository)."""


class RepositoryError(BootError):
    """The TUF repository on the management side is missing, unreadable or inconsistent."""


class TrustError(BootError):
    """The trust bundle or the unit identity from the BMC is missing or unusable."""


class FetchError(BootError):
    """The boot server could not be reached, answered with an error, or was too slow."""


class VerificationError(BootError):
    """Bytes from the network failed verification and were rejected."""


class SignatureError(VerificationError):
    """Metadata is not signed by a threshold of the keys its parent role trusts."""


class MetadataError(VerificationError):
    """TUF metadata was rejected: expired, older than trusted, inconsistent or too long."""


class ManifestError(VerificationError):
    """The release pointer is malformed, or asks for more than the limits allow."""


class PayloadError(VerificationError):
    """A target does not match its metadata (length, SHA-256) or lacks what the OS needs."""


class RollbackError(VerificationError):
    """The channel points at a release below the version the unit's BMC last committed."""
