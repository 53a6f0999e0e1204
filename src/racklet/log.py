"""Structured logging: every line carries the unit, the component and the request.

Lines are ``key=value`` pairs (logfmt), easy to grep and to parse. Callers bind context with
:func:`get_logger` and pass per-call context through ``extra``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

_CONTEXT_KEYS = ("component", "unit", "request")


class _LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}",
            f"level={record.levelname.lower()}",
        ]
        for key in _CONTEXT_KEYS:
            parts.append(f"{key}={getattr(record, key, '-') or '-'}")
        parts.append(f"msg={_quote(record.getMessage())}")
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def _quote(text: str) -> str:
    if text and not any(c in text for c in ' "=\n'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class ContextLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that stamps its bound context (component, unit) on every line."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs

    def bind(self, **context: str) -> ContextLogger:
        merged: dict[str, Any] = dict(self.extra or {})
        merged.update(context)
        return ContextLogger(self.logger, merged)


def get_logger(component: str, **context: str) -> ContextLogger:
    """Logger for one component, e.g. ``get_logger("bmc", unit="unit-1")``."""
    extra: Mapping[str, Any] = {"component": component, **context}
    return ContextLogger(logging.getLogger(f"racklet.{component}"), extra)


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Install the logfmt handler on the ``racklet`` logger (idempotent)."""
    root = logging.getLogger("racklet")
    root.setLevel(level)
    for handler in list(root.handlers):
        if getattr(handler, "_racklet", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_LogfmtFormatter())
    handler._racklet = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.propagate = False
