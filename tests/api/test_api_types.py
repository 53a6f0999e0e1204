"""Resource types: camelCase on the wire, validation names the field, condition timing."""

from __future__ import annotations

import datetime as dt

import pytest

from racklet.api import (
    ComputeUnit,
    Condition,
    InvalidObject,
    find_condition,
    from_yaml,
    parse,
    set_condition,
    to_dict,
    to_yaml,
)

UNIT = {
    "apiVersion": "racklet.dev/v1alpha1",
    "kind": "ComputeUnit",
    "metadata": {"name": "unit-1", "labels": {"tier": "a"}},
    "spec": {"slot": 1, "power": "On", "bmc": {"url": "https://127.0.0.1:8443"}},
}


def test_round_trip_uses_camel_case() -> None:
    unit = parse(UNIT)
    assert isinstance(unit, ComputeUnit)
    wire = to_dict(unit)
    assert wire["metadata"]["resourceVersion"] == ""
    assert "powerWatts" in wire["status"]
    assert from_yaml(to_yaml(unit)) == unit


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("spec", "power"), "Of", "spec.power: Input should be 'On' or 'Off'"),
        (("spec", "slot"), 17, "spec.slot:"),
        (("metadata", "name"), "Unit_1", "metadata.name:"),
        (("spec", "bmc", "url"), "http://x", "spec.bmc.url:"),
    ],
)
def test_validation_names_the_field(path: tuple[str, ...], value: object, expected: str) -> None:
    data = {**UNIT, "spec": {**UNIT["spec"], "bmc": dict(UNIT["spec"]["bmc"])}}  # type: ignore[dict-item]
    data["metadata"] = dict(UNIT["metadata"])  # type: ignore[arg-type]
    target = data
    for key in path[:-1]:
        target = target[key]  # type: ignore[assignment]
    target[path[-1]] = value
    with pytest.raises(InvalidObject) as caught:
        parse(data)
    assert caught.value.problems[0].startswith(expected)


def test_unknown_kind_and_rack_budget() -> None:
    with pytest.raises(InvalidObject, match="kind"):
        parse({"kind": "Toaster"})
    with pytest.raises(InvalidObject, match=r"spec\.psuRatedWatts"):
        parse({"kind": "Rack", "metadata": {"name": "r"}, "spec": {"psuRatedWatts": 0}})


def test_transition_time_moves_only_on_status_change() -> None:
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    conditions: list[Condition] = []
    assert set_condition(conditions, "Ready", "False", "Off", now=t0)
    assert not set_condition(conditions, "Ready", "False", "Off", now=t0 + dt.timedelta(1))
    assert set_condition(conditions, "Ready", "False", "Booting", "x", now=t0 + dt.timedelta(2))
    ready = find_condition(conditions, "Ready")
    assert ready is not None and ready.last_transition_time == t0 and ready.reason == "Booting"
    assert set_condition(conditions, "Ready", "True", "Running", now=t0 + dt.timedelta(3))
    assert ready.last_transition_time == t0 + dt.timedelta(3)
