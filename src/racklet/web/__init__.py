"""The live page: static HTML and a little vanilla JavaScript, no CDN, no build step.

The page polls an open read-only JSON endpoint (``/ui/v1/units``, served by the controller)
every second. :func:`static_app` serves the files; the controller mounts it last, at ``/``.
"""

from racklet.web._static import STATIC_DIR, static_app

__all__ = ["STATIC_DIR", "static_app"]
