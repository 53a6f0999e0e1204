"""The kinds the CLI knows, by every name a person types: plural, singular, short (kubectl's)."""

from __future__ import annotations

from dataclasses import dataclass

from racklet.cli.errors import UsageError


@dataclass(frozen=True)
class Kind:
    name: str  # as in manifests: ComputeUnit
    plural: str  # as in API paths: computeunits
    short: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.plural, self.name.lower(), *self.short)


KINDS: tuple[Kind, ...] = (
    Kind("Rack", "racks"),
    Kind("ComputeUnit", "computeunits", ("unit", "units", "cu")),
    Kind("Release", "releases", ("rel",)),
    Kind("Rollout", "rollouts", ("ro",)),
    Kind("GitSource", "gitsources", ("gs",)),
    Kind("Fault", "faults", ("ft",)),
    Kind("MicroVM", "microvms", ("vm", "vms")),
    Kind("MicroVMSet", "microvmsets", ("vmset", "vmsets", "mvs")),
    Kind("Event", "events", ("ev",)),
)
_BY_NAME = {alias: kind for kind in KINDS for alias in kind.names}
_BY_KIND = {kind.name: kind for kind in KINDS}


def all_names() -> list[str]:
    return sorted(_BY_NAME)


def resolve(text: str) -> Kind:
    """The kind a person means by ``text`` (case-insensitive); a usage error otherwise."""
    kind = _BY_NAME.get(text.lower())
    if kind is None:
        known = ", ".join(k.plural for k in KINDS)
        raise UsageError(f"unknown kind {text!r} (known: {known})")
    return kind


def by_kind(name: str) -> Kind:
    kind = _BY_KIND.get(name)
    if kind is None:
        return Kind(name, name.lower() + "s")
    return kind


def split_ref(text: str) -> tuple[Kind, str]:
    """``kind/name`` as in ``racklet wait computeunit/unit-1``."""
    kind, sep, name = text.partition("/")
    if not sep or not name:
        raise UsageError(f"expected KIND/NAME, got {text!r}")
    return resolve(kind), name
