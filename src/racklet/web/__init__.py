"""The dashboard's files: plain ES modules and vendored uPlot, no CDN (``make web`` rebuilds
``static/`` from the pinned npm packages in ``frontend/``).

The page logs in for a session, takes one snapshot and one live stream (``/ui/v1``, served by
:mod:`racklet.controller._ui`) and acts through ``/api/v1`` like the CLI. :func:`static_app`
serves the files with a strict Content-Security-Policy (``HEADERS``); the controller mounts it
last, at ``/``, after its own answer for the page itself (which carries the first data).
"""

from racklet.web._static import HEADERS, STATIC_DIR, static_app

__all__ = ["HEADERS", "STATIC_DIR", "static_app"]
