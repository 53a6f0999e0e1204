"""The rack's certificate authority: every listener's and every machine's identity."""

from racklet.pki._ca import Identity, RackCA
from racklet.pki.errors import PkiError

__all__ = ["Identity", "PkiError", "RackCA"]
