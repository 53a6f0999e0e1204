"""PKI errors: ``PkiError`` (a missing, unreadable or mismatched key or certificate)."""

from racklet.errors import RackletError


class PkiError(RackletError):
    """A key or certificate is missing, unreadable or does not belong to this rack."""
