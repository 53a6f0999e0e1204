"""The dashboard's files: plain ES modules and vendored uPlot, no CDN (``make web`` rebuilds
``static/`` from the pinned npm packages in ``frontend/``).

The page logs in for a session, takes one snapshot and one live stream (``/ui/v1``, served by
:mod:`racklet.controller._ui`) and acts through ``/api/v1`` like the CLI. :func:`static_app`
serves the files with a strict Content-Security-Policy; the controller mounts it last, at ``/``.
"""

from racklet.web._static import STATIC_DIR, static_app

__all__ = ["STATIC_DIR", "static_app"]
