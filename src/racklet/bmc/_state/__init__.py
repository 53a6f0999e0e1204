"""What one BMC keeps and observes, apart from how Redfish shows it.

Accounts and login throttling, the unit's boot status, power control and meter, console
log, event bus, fan policy, A/B slots (the unit's and the BMC's own), certificates on disk,
the energy counter, and :class:`~racklet.bmc._state.context.BmcContext` that hands them to
the resource families. Nothing here imports a family; the one Redfish body built here is a
Task's, shared by the update service that starts it and the task service that serves it.
"""
