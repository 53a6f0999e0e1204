"""Every kind validates with errors that name the field path; the reference page is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from racklet.api import (
    KINDS,
    GitSource,
    InvalidObject,
    InvalidSelector,
    Release,
    Rollout,
    from_yaml,
    parse,
    parse_duration,
    parse_selector,
)
from racklet.api.docs import render

ROOT = Path(__file__).resolve().parents[2]
SHA = "ab" * 32


def gitsource(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "racklet.dev/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": "rack-config"},
        "spec": spec,
    }


def test_every_kind_is_registered() -> None:
    assert set(KINDS) == {
        "Rack", "ComputeUnit", "Release", "Rollout", "GitSource", "Fault", "MicroVM",
        "MicroVMSet",
    }  # fmt: skip


def test_gitsource_defaults_and_round_trip() -> None:
    source = parse(gitsource(localPath="/srv/rack.git", prune=True))
    assert isinstance(source, GitSource)
    assert (source.spec.branch, source.spec.path, source.spec.interval) == ("main", ".", "1m")
    assert source.spec.prune and not source.spec.suspend
    assert source.status.last_applied_commit is None and source.status.history == []


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({}, "spec: Value error, exactly one of url and localPath must be set"),
        ({"url": "https://x/r.git", "localPath": "/r"}, "spec: Value error, exactly one"),
        ({"url": "ftp://x/r.git"}, "spec.url: String should match pattern"),
        ({"localPath": "/r", "interval": "soon"}, "spec.interval: String should match pattern"),
        ({"localPath": "/r", "interval": "0s"}, "spec: Value error, must be at least 1s"),
        ({"localPath": "/r", "path": "../etc"}, "spec: Value error, path must stay inside"),
        ({"localPath": "/r", "prune": "perhaps"}, "spec.prune: Input should be a valid boolean"),
        ({"localPath": "/r", "sync": True}, "spec.sync: Extra inputs are not permitted"),
    ],
)
def test_gitsource_errors_name_the_field(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        parse(gitsource(**spec))
    assert caught.value.problems[0].startswith(problem), caught.value.problems


def test_release_and_rollout_validate() -> None:
    release = parse(
        {
            "kind": "Release",
            "metadata": {"name": "os-1-2-0"},
            "spec": {
                "version": "1.2.0",
                "image": {"url": "https://boot/os.img", "sha256": SHA, "sizeBytes": 10},
            },
        }
    )
    assert isinstance(release, Release) and release.spec.image.size_bytes == 10
    rollout = parse({"kind": "Rollout", "metadata": {"name": "r"}, "spec": {"release": "os-1-2-0"}})
    assert isinstance(rollout, Rollout) and rollout.spec.batch_size == 1
    with pytest.raises(InvalidObject) as caught:
        parse(
            {
                "kind": "Release",
                "metadata": {"name": "Bad_Name"},
                "spec": {"version": "one", "image": {"url": "https://b", "sha256": "x"}},
            }
        )
    fields = sorted(p.split(":")[0] for p in caught.value.problems)
    assert fields == [
        "metadata.name",
        "spec.image.sha256",
        "spec.image.sizeBytes",
        "spec.version",
    ]
    with pytest.raises(InvalidObject, match=r"spec.batchSize: Input should be greater than"):
        parse(
            {"kind": "Rollout", "metadata": {"name": "r"}, "spec": {"release": "x", "batchSize": 0}}
        )


def test_unknown_kind_version_and_unparsable_yaml() -> None:
    with pytest.raises(InvalidObject, match=r"kind: must be one of .*GitSource.*got 'Pod'"):
        parse({"kind": "Pod", "metadata": {"name": "p"}})
    with pytest.raises(InvalidObject, match=r"apiVersion: must be racklet\.dev/v1alpha1"):
        parse({"apiVersion": "v1", "kind": "Rack", "metadata": {"name": "r"}, "spec": {}})
    with pytest.raises(InvalidObject, match="not YAML"):
        from_yaml("kind: [Rack\n")


def test_durations() -> None:
    assert parse_duration("1m30s") == 90 and parse_duration("2h") == 7200
    for bad in ("", "5", "1.5s", "s", "1d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_label_selectors() -> None:
    selector = parse_selector("role=web, tier!=db,racklet.dev/rack,!draining")
    assert str(selector) == "role=web,tier!=db,racklet.dev/rack,!draining"
    assert selector.matches({"role": "web", "racklet.dev/rack": "r1"})
    assert not selector.matches({"role": "web", "tier": "db", "racklet.dev/rack": "r1"})
    assert not selector.matches({"role": "web", "racklet.dev/rack": "r1", "draining": "1"})
    assert not selector.matches({"role": "db", "racklet.dev/rack": "r1"})
    assert parse_selector("a==b").matches({"a": "b"})
    for bad in ("a=b,,c", "a in (b)", "=b", "a=b c", "bad key=x"):
        with pytest.raises(InvalidSelector, match="labelSelector: "):
            parse_selector(bad)


def test_committed_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "resources.md").read_text()
    assert committed == render(), "run: python -m racklet.api.docs > docs/resources.md"
    out = subprocess.run(
        [sys.executable, "-m", "racklet.api.docs"], check=True, capture_output=True, text=True
    ).stdout
    assert out == committed
    for kind in KINDS:
        assert f"## {kind}" in committed
    assert "`localPath`" in committed and "`lastAppliedCommit`" in committed
