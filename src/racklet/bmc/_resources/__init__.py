"""The Redfish resources of the BMC, one package per family (as sushy's ``resources/`` tree
is for the client side): ``root``, ``systems``, ``chassis``, ``managers``, ``accounts``,
``events``, ``update``, ``certificates``, ``tasks``.

Each family declares its bodies (:mod:`racklet.bmc._http.declared`), serves them with
module-level handlers or small classes, and exports ``routes(...)``. Families share only the
HTTP plumbing (:mod:`racklet.bmc._http`), the BMC's state (:mod:`racklet.bmc._state`) and
the resource addresses (:mod:`racklet.bmc._http.uris`); an import contract keeps them
from importing each other.
"""
