"""Label selectors in Kubernetes' string form: ``a=b,c!=d,e,!f``.

Parsed once into requirements that all must hold; ``str()`` gives back the canonical form.
Set-based forms (``in``, ``notin``) are not supported yet and are refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from racklet.api.errors import InvalidSelector

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
Op = Literal["=", "!=", "exists", "!exists"]


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Op
    value: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "=":
            return labels.get(self.key) == self.value
        if self.op == "!=":
            return labels.get(self.key) != self.value
        if self.op == "exists":
            return self.key in labels
        return self.key not in labels

    def __str__(self) -> str:
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{self.value}"
        return self.key if self.op == "exists" else f"!{self.key}"


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> Selector:
        """Equality on every given label (what ``metadata.labels`` selectors mean)."""
        return cls(tuple(Requirement(k, "=", v) for k, v in sorted(labels.items())))


def parse_selector(text: str) -> Selector:
    """Parse ``a=b,c!=d,e,!f``; :class:`InvalidSelector` names the bad requirement."""
    requirements = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            if text.strip():
                raise InvalidSelector(text, "empty requirement")
            continue
        if " in " in part or " notin " in part or "(" in part:
            raise InvalidSelector(part, "set-based selectors (in, notin) are not supported")
        op: Op
        if "!=" in part:
            key, value, op = *part.split("!=", 1), "!="
        elif "==" in part:
            key, value, op = *part.split("==", 1), "="
        elif "=" in part:
            key, value, op = *part.split("=", 1), "="
        elif part.startswith("!"):
            key, value, op = part[1:], "", "!exists"
        else:
            key, value, op = part, "", "exists"
        key, value = key.strip(), value.strip()
        if not _KEY.match(key):
            raise InvalidSelector(part, f"{key!r} is not a valid label key")
        if not _VALUE.match(value) or len(value) > 63:
            raise InvalidSelector(part, f"{value!r} is not a valid label value")
        requirements.append(Requirement(key, op, value))
    return Selector(tuple(requirements))
