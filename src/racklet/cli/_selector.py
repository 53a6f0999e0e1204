"""Label selectors on the command line (``-l tier=edu,owner!=ci``), parsed by the API's rules.

The selector is sent to the server (``?labelSelector=``) and also checked here, so the CLI
shows the same thing whatever controller version it talks to, and a malformed selector is a
usage error before any request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from racklet.api import InvalidSelector, Selector, parse_selector

__all__ = ["Selector", "matches", "parse"]
from racklet.cli.errors import UsageError


def parse(text: str) -> Selector:
    try:
        return parse_selector(text)
    except InvalidSelector as exc:
        raise UsageError(f"label selector {text!r}: {exc}") from None


def matches(selector: Selector | None, obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return selector is None or selector.matches(labels)
