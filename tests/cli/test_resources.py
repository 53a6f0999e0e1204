"""get, describe, events, wait and completion against a real controller API over TLS."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from racklet.api import ComputeUnit, Event, set_condition
from tests.cli.conftest import LiveApi, Result, run_main


def one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("racklet: error: "), result.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_get_units_table_keeps_its_columns(live: LiveApi) -> None:
    result = live.cli("get", "units")
    assert result.code == 0, result
    header, *rows = result.out.splitlines()
    assert header.split()[:4] == ["NAME", "SLOT", "PHASE", "POWER(W)"]
    assert "LOAD(%)" in header.split()
    assert [r.split()[0] for r in rows] == ["unit-1", "unit-2", "unit-3"]


def test_get_wide_adds_columns(live: LiveApi) -> None:
    result = live.cli("get", "computeunits", "-o", "wide")
    header = result.out.splitlines()[0].split()
    assert {"DESIRED", "BMC"} <= set(header)
    assert "https://127.0.0.1:2" in result.out


@pytest.mark.parametrize("kind", ["rack", "racks", "Rack"])
def test_get_any_kind_by_any_name(live: LiveApi, kind: str) -> None:
    result = live.cli("get", kind, "-o", "name")
    assert result.out.split() == ["rack/rack-1"]


def test_get_json_and_yaml_are_the_objects(live: LiveApi) -> None:
    listed = json.loads(live.cli("get", "units", "-o", "json").out)
    assert listed["kind"] == "ComputeUnitList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["unit-1", "unit-2", "unit-3"]
    one = yaml.safe_load(live.cli("get", "unit", "unit-2", "-o", "yaml").out)
    assert one["kind"] == "ComputeUnit" and one["spec"]["slot"] == 2


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("tier=edu", ["unit-1", "unit-2"]),
        ("tier==lab", ["unit-3"]),
        ("tier!=edu", ["unit-3"]),
        ("tier", ["unit-1", "unit-2", "unit-3"]),
        ("!tier", []),
        ("tier=edu,tier!=edu", []),
    ],
)
def test_label_selectors(live: LiveApi, selector: str, names: list[str]) -> None:
    result = live.cli("get", "units", "-l", selector, "-o", "name")
    assert result.code == 0, result
    assert result.out.split() == [f"computeunit/{n}" for n in names]


def test_bad_selector_and_unknown_kind_are_usage_errors(live: LiveApi) -> None:
    one_line_error(live.cli("get", "units", "-l", "tier=a b"), 2, "label selector")
    one_line_error(live.cli("get", "widgets"), 2, "unknown kind 'widgets'", "computeunits")
    one_line_error(live.cli("get", "units", "-o", "xml"), 2, "xml")


def test_get_a_missing_object_is_one_line(live: LiveApi) -> None:
    one_line_error(live.cli("get", "rack", "rack-9"), 1, "rack-9", "not found")


def test_describe_a_rack_and_a_unit(live: LiveApi) -> None:
    live.run(live.store.record_event(Event.about("Rack", "rack-1", "BudgetOk", "60 W to spare")))
    rack = live.cli("describe", "rack", "rack-1")
    assert rack.code == 0, rack
    assert "Kind:         Rack" in rack.out and "psuRatedWatts: 60.0" in rack.out
    assert "BudgetOk: 60 W to spare" in rack.out
    unit = live.cli("describe", "unit", "unit-3")
    assert "Slot:          3" in unit.out and "Labels:        tier=lab" in unit.out


def test_events_lists_what_happened(live: LiveApi) -> None:
    live.run(live.store.record_event(Event.about("ComputeUnit", "unit-1", "PoweredOn", "by me")))
    live.run(live.store.record_event(Event.about("Rack", "rack-1", "Hot", "too warm", "Warning")))
    table = live.cli("events").out
    assert "computeunit/unit-1" in table and "PoweredOn" in table and "Warning" in table
    only = json.loads(live.cli("events", "--for", "rack/rack-1", "-o", "json").out)["items"]
    assert [e["reason"] for e in only] == ["Hot"]


def _set_ready(live: LiveApi, name: str, status: str) -> None:
    async def write() -> None:
        unit = await live.store.get(ComputeUnit, name)
        set_condition(unit.status.conditions, "Ready", status, "Test", "set by the test")  # type: ignore[arg-type]
        await live.store.update_status(unit)

    live.run(write())


def test_wait_returns_once_the_condition_holds(live: LiveApi) -> None:
    results: list[Result] = []
    waiter = threading.Thread(
        target=lambda: results.append(
            live.cli("wait", "computeunit/unit-2", "--for=condition=Ready", "--timeout=30s")
        )
    )
    waiter.start()
    _set_ready(live, "unit-2", "True")
    waiter.join(timeout=40)
    assert results and results[0].code == 0, results
    assert results[0].out.strip() == "computeunit/unit-2 condition met"


def test_wait_times_out_with_the_reason(live: LiveApi) -> None:
    _set_ready(live, "unit-1", "False")
    result = live.cli("wait", "unit/unit-1", "--for", "condition=Ready", "--timeout", "1s")
    one_line_error(result, 1, "timed out", "computeunit/unit-1", "set by the test")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("wait", "unit-1", "--for=condition=Ready"), "KIND/NAME"),
        (("wait", "unit/unit-1", "--for=ready"), "--for=ready"),
        (("wait", "unit/unit-1", "--for=delete", "--timeout=soon"), "duration"),
    ],
)
def test_wait_usage_errors(live: LiveApi, args: tuple[str, ...], needle: str) -> None:
    one_line_error(live.cli(*args), 2, needle)


def test_wait_for_a_field(live: LiveApi) -> None:
    result = live.cli("wait", "unit/unit-1", "--for=jsonpath={.spec.power}=On", "--timeout=5s")
    assert result.code == 0 and "condition met" in result.out


def _complete(script: str, line: str, env_path: str) -> list[str]:
    """Ask bash's completion function what it offers after ``line``."""
    words = line.split(" ")
    program = (
        f"{script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_racklet; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    result = subprocess.run(
        ["bash", "--norc", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": env_path},
    )
    assert result.returncode == 0, result.stderr
    return sorted(w for w in result.stdout.split() if w)


def test_bash_completion_offers_commands_kinds_and_live_names(
    live: LiveApi, tmp_path: Path
) -> None:
    script = run_main("completion", "bash").out
    # a `racklet` on PATH that talks to the test's controller, as an installed one would
    bindir = tmp_path / "bin"
    bindir.mkdir()
    import sys

    (bindir / "racklet").write_text(
        f'#!/bin/sh\nexec {sys.executable} -m racklet.cli --config {live.config_path} "$@"\n'
    )
    (bindir / "racklet").chmod(0o755)
    path = f"{bindir}:/usr/bin:/bin"
    assert {"apply", "get", "wait", "completion"} <= set(_complete(script, "racklet ", path))
    assert _complete(script, "racklet get git", path) == ["gitsource", "gitsources"]
    assert _complete(script, "racklet get units unit-", path) == ["unit-1", "unit-2", "unit-3"]
    assert _complete(script, "racklet wait rack/", path) == ["rack/rack-1"]
    assert "--selector" in _complete(script, "racklet get units --s", path)


def test_zsh_completion_reuses_the_bash_function() -> None:
    script = run_main("completion", "zsh").out
    assert "bashcompinit" in script and "complete -F _racklet racklet" in script
