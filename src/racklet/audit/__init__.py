"""The audit trail: one JSON line per state-changing request, on every side of the rack.

The controller's API, each BMC and the RMC put an :class:`AuditMiddleware` outermost around
their ASGI app. For every request that may change state (any method but GET, HEAD, OPTIONS)
it writes one line, whether the request succeeded, was refused or crashed::

    {"time": "...", "component": "bmc/unit-1", "requestId": "...", "principal": "admin",
     "role": "Administrator", "source": "127.0.0.1:50312", "verb": "ComputerSystem.Reset",
     "object": "/redfish/v1/Systems/unit-1", "outcome": "succeeded", "status": 200}

``outcome`` is ``succeeded`` (status < 400), ``refused`` (401, 403: not authenticated or not
allowed) or ``failed`` (any other error); a failure also carries the error's ``message``. The
principal is who the service authenticated (the app puts it in ``scope["state"]["principal"]``,
an object with ``username``/``name`` and ``role``); ``null`` when nobody was. The request id is
the caller's ``X-Request-Id`` when it is well formed (so a line of the RMC and the line of the
BMC it forwarded to share it), otherwise a new one; the answer carries it back.

Each service writes its own file in its own storage (``controller/audit.log``,
``bmc/<unit>/audit.log``, ``rmc/audit.log``), mode 0600, rotated by size to ``audit.log.1`` ..
``.N``. :class:`AuditLog` never blocks the event loop: a line is queued and one writer thread
appends it at once and fsyncs at most every ``SYNC_SECONDS`` (and when it goes idle), so a
burst of writes shares one fsync. If the disk cannot keep up the queue is bounded: lines
beyond it are counted, logged and noted in the file as soon as it accepts lines again, so a gap
is visible rather than silent. :func:`read_records` is what ``racklet audit`` reads.

Not here: shipping the lines anywhere (a collector can tail the files), or auditing reads.
"""

from racklet.audit._log import BACKUPS, MAX_BYTES, SYNC_SECONDS, AuditLog
from racklet.audit._middleware import (
    REQUEST_ID_HEADER,
    SAFE_METHODS,
    AuditMiddleware,
    Describe,
    error_message,
    new_request_id,
    outcome_of,
    redfish_verb,
    request_id_of,
)
from racklet.audit._reader import (
    AuditFilter,
    AuditFormatError,
    audit_files,
    parse_since,
    read_records,
)

__all__ = [
    "BACKUPS",
    "MAX_BYTES",
    "REQUEST_ID_HEADER",
    "SAFE_METHODS",
    "SYNC_SECONDS",
    "AuditFilter",
    "AuditFormatError",
    "AuditLog",
    "AuditMiddleware",
    "Describe",
    "audit_files",
    "error_message",
    "new_request_id",
    "outcome_of",
    "parse_since",
    "read_records",
    "redfish_verb",
    "request_id_of",
]
