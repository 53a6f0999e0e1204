"""The CertificateService, for the RMC to serve with the BMC's code.

One implementation, two services (as :mod:`racklet.bmc.login` is for accounts and sessions):
the store that makes keys and checks what the rack CA signed
(:class:`CertificateStore`), and the Redfish family over its slots (:func:`routes`:
GenerateCSR, ReplaceCertificate, CertificateLocations, the certificate collections). A fix
to either holds for the BMC's certificates and the RMC's alike. The RMC gives the store one
slot, its listener's (:func:`https_slot`).
"""

from racklet.bmc._resources.certificates import routes
from racklet.bmc._state.certificates import (
    CertificateRejected,
    CertificateStore,
    CertSlot,
    https_slot,
)

__all__ = ["CertSlot", "CertificateRejected", "CertificateStore", "https_slot", "routes"]
