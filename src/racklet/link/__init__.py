"""The backplane link: a framed request/response protocol between a unit and its BMC.

Each frame is a 4-byte big-endian length followed by a UTF-8 JSON object (at most 1 MiB).
The unit sends ``{"op": NAME, ...}``; the BMC answers ``{"ok": true, ...}`` or
``{"ok": false, "error": MESSAGE}``. Operations (see ``docs/architecture.md``):

- ``trust``: the boot trust bundle: ``bootServer`` (URL), ``tufRoot`` (the TUF root metadata,
  JSON text: the unit's trust anchor), ``channel`` (the release channel it follows),
  ``caBundle`` (PEM of the rack CA).
- ``identity``: the unit's TLS identity held by the BMC: ``key`` and ``cert`` (PEM), ``name``.
- ``progress``: boot progress: ``state`` (a Redfish BootProgress LastState value) and
  optional ``message``.
- ``failed``: the boot failed: ``reason`` (one line); the BMC shows it in Redfish.

A/B state (held by the BMC in ``bmc/<unit>/ab.json``; see ``docs/ab-updates.md``):

- ``ab``: read ``committed`` and ``trying`` (``slot``, ``version``, ``sha256``), ``tryboot``
  (the one-shot flag), ``rollbackVersion`` (the monotonic counter: the highest committed
  version), ``rejectedVersion``, ``lastTrial``. With ``consume: true`` (a boot reads it) the
  answer adds ``mode`` (``try``, ``committed`` or ``empty``) and the flag is cleared.
- ``tryboot``: arm a trial: ``slot`` (the one not committed), ``version``, ``sha256``,
  ``deadlineSeconds``; refused below ``rollbackVersion``. ``tryboot-clear`` disarms it.
- ``commit``: ``slot``, ``version``, ``sha256`` of the slot on trial, after its health check
  and within its deadline (or the very first install); raises ``rollbackVersion``.
- ``restart``: the unit asks to be reset (``reason``): a trial that failed its health check.
"""

from racklet.link._protocol import LinkClient, LinkError, serve_link

__all__ = ["LinkClient", "LinkError", "serve_link"]
