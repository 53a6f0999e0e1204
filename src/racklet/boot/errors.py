"""Boot errors: what went wrong, named by who is to blame::

    BootError                   anything on the boot path
    ├── PublishError            caller misuse on the publish side (bad size, key, version)
    ├── TrustError              the BMC could not hand over a usable trust bundle or identity
    ├── FetchError              transport: boot server unreachable, HTTP error, timeout
    └── VerificationError       remote data is not what the signed manifest promises
        ├── SignatureError      the manifest's signature does not verify (or the key is bad)
        ├── ManifestError       a signed manifest that is malformed or out of limits
        └── PayloadError        the payload's length or SHA-256 differs, or its content is bad

Every message is one line: the bootstrap client prints it on the console and sends it to the
BMC as the ``failed`` reason.
"""

from racklet.errors import RackletError


class BootError(RackletError):
    """The boot path failed; nothing unverified was booted."""


class PublishError(BootError):
    """A payload or key could not be published (invalid input or an unwritable repository)."""


class TrustError(BootError):
    """The trust bundle or the unit identity from the BMC is missing or unusable."""


class FetchError(BootError):
    """The boot server could not be reached, answered with an error, or was too slow."""


class VerificationError(BootError):
    """Bytes from the network failed verification and were rejected."""


class SignatureError(VerificationError):
    """The manifest signature is invalid, or made with another key."""


class ManifestError(VerificationError):
    """The manifest is malformed, or asks for more than the limits allow."""


class PayloadError(VerificationError):
    """The payload does not match its manifest (length, SHA-256) or lacks what the OS needs."""
