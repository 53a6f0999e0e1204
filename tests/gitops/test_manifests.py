"""Manifest sets: every problem names file, document and field; YAML 1.2 booleans."""

from __future__ import annotations

import pytest

from racklet.gitops import InvalidManifests, load_manifests
from tests.gitops.conftest import RACK, unit


def test_documents_of_every_file_are_validated_and_normalised() -> None:
    manifests = load_manifests(
        {"rack.yaml": RACK.encode(), "units.yaml": (unit(1) + "---\n" + unit(2, "Off")).encode()}
    )
    assert [m.ref for m in manifests] == ["rack/rack-1", "computeunit/unit-1", "computeunit/unit-2"]
    assert manifests[2].body["spec"]["power"] == "Off"  # YAML 1.2: Off is a string
    assert manifests[0].body["spec"]["slots"] == 16  # defaults filled in
    assert "status" not in manifests[0].body


def test_all_problems_are_collected_with_document_and_field() -> None:
    with pytest.raises(InvalidManifests) as caught:
        load_manifests(
            {
                "a.yaml": (
                    unit(1) + "---\n" + unit(2).replace("power: On", "power: Maybe")
                ).encode(),
                "b.yaml": b"apiVersion: racklet.dev/v1alpha1\nkind: Toaster\nmetadata: {name: t}\n",
                "c.yaml": b"\xff\xfe",
            }
        )
    problems = caught.value.problems
    assert problems[0].startswith("a.yaml: document 2 (computeunit/unit-2): spec.power")
    assert problems[1].startswith("b.yaml: kind: must be one of")
    assert problems[2] == "c.yaml: not UTF-8 text"
    assert str(caught.value).endswith("(and 2 more)")


def test_events_are_not_manifests() -> None:
    text = b"apiVersion: racklet.dev/v1alpha1\nkind: Event\nmetadata: {name: e}\n"
    with pytest.raises(InvalidManifests, match="recorded by the controller"):
        load_manifests({"e.yaml": text})


def test_empty_documents_are_skipped() -> None:
    assert load_manifests({"empty.yaml": b"---\n---\n# nothing\n"}) == []


def test_yaml_aliases_are_refused_before_they_expand() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 7)]
    bomb = "metadata:\n  labels:\n    " + "\n    ".join(lines) + "\n"
    with pytest.raises(InvalidManifests) as caught:
        load_manifests({"units.yaml": (unit(1) + "---\n" + unit(2) + bomb).encode()})
    assert caught.value.problems == ["units.yaml: YAML aliases are not accepted"]
