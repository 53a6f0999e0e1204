"""``racklet apply -f``: validation names file and field, and nothing is applied from a bad set."""

from __future__ import annotations

from pathlib import Path

import pytest

from racklet.api import ComputeUnit
from tests.cli.conftest import LiveApi
from tests.cli.test_resources import one_line_error

UNIT = """\
apiVersion: racklet.dev/v1alpha1
kind: ComputeUnit
metadata:
  name: {name}
spec:
  slot: {slot}
  power: {power}
  bmc:
    url: https://127.0.0.1:{slot}
"""


def unit(name: str = "unit-1", slot: int = 1, power: str = "Off") -> str:
    return UNIT.format(name=name, slot=slot, power=power)


def powers(live: LiveApi) -> dict[str, str]:
    units = live.run(live.store.list(ComputeUnit))
    return {u.metadata.name: u.spec.power for u in units}


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("kind: [unclosed", ("bad.yaml", "line 1", "not valid YAML")),
        (unit().replace("ComputeUnit", "Toaster"), ("bad.yaml", "kind", "Toaster")),
        (unit().replace("  power:", "  colour: red\n  power:"), ("bad.yaml", "spec.colour")),
        (unit().replace("slot: 1", "slot: first"), ("bad.yaml", "spec.slot")),
        (unit(name="Unit_1"), ("bad.yaml", "metadata.name")),
        (unit().replace("racklet.dev/v1alpha1", "v1"), ("bad.yaml", "apiVersion")),
        ("- just\n- a list\n", ("bad.yaml", "mapping")),
    ],
)
def test_invalid_manifest_is_one_line_naming_file_and_field(
    live: LiveApi, tmp_path: Path, text: str, needles: tuple[str, ...]
) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    result = live.cli("apply", "-f", str(tmp_path / "bad.yaml"))
    one_line_error(result, 1, *needles)
    assert "Traceback" not in result.err


def test_nothing_is_applied_when_any_document_is_invalid(live: LiveApi, tmp_path: Path) -> None:
    before = powers(live)
    manifests = tmp_path / "rack"
    manifests.mkdir()
    (manifests / "a.yaml").write_text(unit("unit-1", 1) + "---\n" + unit("unit-2", 2))
    (manifests / "b.yaml").write_text(unit("unit-3", 3).replace("slot: 3", "slot: 99"))
    result = live.cli("apply", "-f", str(manifests))
    one_line_error(result, 1, "b.yaml", "spec.slot", "less than or equal to 16")
    assert result.out == ""
    assert powers(live) == before


def test_a_name_declared_twice_is_rejected(live: LiveApi, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(unit() + "---\n" + unit(power="On"))
    one_line_error(live.cli("apply", "-f", str(tmp_path / "a.yaml")), 1, "also declared")


def test_missing_file_is_one_line(live: LiveApi, tmp_path: Path) -> None:
    one_line_error(live.cli("apply", "-f", str(tmp_path / "nope.yaml")), 1, "nope.yaml")
