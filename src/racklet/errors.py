"""Racklet's root error type.

Every package's own ``errors`` module derives from :class:`RackletError`, so the CLI can turn
any of them into a one-line message::

    RackletError
    ├── ConfigError            racklet.yaml missing, unreadable or malformed
    ├── pki.errors.PkiError    certificates and keys
    ├── link.errors.LinkError  the backplane link between a unit and its BMC
    ├── boot.errors.BootError  payload building, fetching and verification
    └── ...                    one per package
"""


class RackletError(Exception):
    """Base of every error Racklet raises on purpose."""


class ConfigError(RackletError):
    """The rack's configuration file is missing, unreadable or malformed."""
