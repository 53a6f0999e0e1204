"""``racklet stress`` against a real API over TLS: an operator of the unit may, the request is
audited, the job waits on the unit for its next heartbeat, and bad input is one line."""

from __future__ import annotations

import json

import pytest

from racklet.api import ComputeUnit
from racklet.controller._stress import STRESS_ANNOTATION, job_for_heartbeat
from tests.cli.conftest import LiveApi
from tests.cli.test_audit import lines
from tests.cli.test_resources import one_line_error
from tests.cli.test_tokens import as_token, make_token


def _phase(live: LiveApi, name: str, phase: str) -> None:
    async def write() -> None:
        unit = await live.store.get(ComputeUnit, name)
        unit.status.phase = phase  # type: ignore[assignment]
        await live.store.update_status(unit)

    live.run(write())


def _annotation(live: LiveApi, name: str) -> str | None:
    unit = live.run(live.store.get(ComputeUnit, name))
    return unit.metadata.annotations.get(STRESS_ANNOTATION)


def test_an_operator_stresses_its_running_unit_and_the_job_waits_for_a_heartbeat(
    live: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    _phase(live, "unit-2", "Running")
    operator = make_token(live, "--role", "operator", "--units", "unit-2", "--name", "carol")
    done = as_token(live, monkeypatch, operator, "stress", "unit-2", "--cpu", "75", "--for", "60s")
    assert done.code == 0, done
    assert "stress 75 % of its cores for 60 s" in done.out
    job = json.loads(_annotation(live, "unit-2") or "{}")
    assert (job["cpu"], job["seconds"]) == (0.75, 60.0) and job["id"]

    [line] = [entry for entry in lines(live) if entry["verb"] == "stress"]
    assert line["object"] == "computeunits/unit-2"
    assert (line["principal"], line["role"], line["outcome"]) == ("carol", "operator", "succeeded")

    # The heartbeat reply carries the job until the agent names it as taken.
    offered = live.run(job_for_heartbeat(live.store, "unit-2", None))
    assert offered is not None and offered.id == job["id"] and offered.cpu == 0.75
    assert live.run(job_for_heartbeat(live.store, "unit-2", job["id"])) is None
    assert _annotation(live, "unit-2") is None

    other = as_token(live, monkeypatch, operator, "stress", "unit-1", "--cpu", "50", "--for", "1m")
    one_line_error(other, 1, "may act on unit-2 only")


def test_a_unit_that_is_not_running_is_refused_with_the_reason(live: LiveApi) -> None:
    _phase(live, "unit-1", "Off")
    one_line_error(
        live.cli("stress", "unit-1", "--cpu", "75", "--for", "60s"),
        1,
        "unit-1",
        "is Off",
        "must be Running",
    )
    assert _annotation(live, "unit-1") is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--cpu", "150", "--for", "60s"), "0..100"),
        (("--cpu", "-5", "--for", "60s"), "0..100"),
        (("--cpu", "lots", "--for", "60s"), "percentage"),
        (("--cpu", "75", "--for", "0s"), "24h"),
        (("--cpu", "75", "--for", "2d"), "duration"),
        (("--cpu", "75", "--for", "25h"), "24h"),
        (("--cpu", "75"), "--for"),
    ],
)
def test_bad_stress_arguments_are_one_line(
    live: LiveApi, args: tuple[str, ...], needle: str
) -> None:
    _phase(live, "unit-1", "Running")
    one_line_error(live.cli("stress", "unit-1", *args), 2, needle)
    assert _annotation(live, "unit-1") is None


def test_an_unknown_unit_is_one_line(live: LiveApi) -> None:
    one_line_error(live.cli("stress", "unit-9", "--cpu", "75", "--for", "60s"), 1, "unit-9")
