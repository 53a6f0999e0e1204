"""Serve the page's files from the package (file reads happen in a worker thread)."""

from __future__ import annotations

from pathlib import Path

from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def static_app() -> StaticFiles:
    """``index.html`` at ``/``, the script and style beside it."""
    return StaticFiles(directory=STATIC_DIR, html=True)
