"""PKI errors.

PkiError              a key or certificate is missing, unreadable or mismatched
└── CsrRefused        a signing request names someone other than the CA asked for
"""

from racklet.errors import RackletError


class PkiError(RackletError):
    """A key or certificate is missing, unreadable or does not belong to this rack."""


class CsrRefused(PkiError):
    """A CSR asks for another name than the one requested of its holder; nothing is signed."""

    def __init__(self, asked: str, got: str) -> None:
        super().__init__(f"the request names {got!r}, not {asked!r} as asked: refused")
        self.asked = asked
        self.got = got
