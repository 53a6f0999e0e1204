"""The GitSource reconciler against a real Git repository and the store: apply, atomicity,
prune, drift, suspend and bad sources, each visible in status and events."""

from __future__ import annotations

from racklet.api import ComputeUnit, Rack, find_condition, to_dict, validate
from racklet.gitops import OWNER_LABEL
from tests.gitops.conftest import RACK, World, add_source, unit


async def test_first_sync_applies_every_manifest_and_reports_it(world: World) -> None:
    outcome = await world.reconciler.reconcile("rack")
    assert outcome is not None and outcome.error is None
    assert sorted(outcome.created) == [
        "computeunit/unit-1",
        "computeunit/unit-2",
        "computeunit/unit-3",
        "rack/rack-1",
    ]
    rack = await world.store.get(Rack, "rack-1")
    assert rack.spec.psu_rated_watts == 60 and rack.metadata.labels[OWNER_LABEL] == "rack"
    assert await world.powers() == {"unit-1": "On", "unit-2": "On", "unit-3": "On"}
    status = (await world.source()).status
    assert status.last_applied_commit == world.first
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None and ready.status == "True" and world.first[:12] in ready.message
    assert find_condition(status.conditions, "Stalled") is None
    assert [h.result for h in status.history] == ["Applied"]
    assert {(r.kind, r.name) for r in status.inventory} >= {("Rack", "rack-1")}
    assert "Applied" in await world.reasons("rack")


async def test_a_second_sync_of_the_same_commit_writes_nothing(world: World) -> None:
    await world.reconciler.reconcile("rack")
    before = {
        u.metadata.name: u.metadata.resource_version for u in await world.store.list(ComputeUnit)
    }
    outcome = await world.reconciler.reconcile("rack")
    assert outcome is not None and not (outcome.created or outcome.configured or outcome.drifted)
    after = {
        u.metadata.name: u.metadata.resource_version for u in await world.store.list(ComputeUnit)
    }
    assert after == before
    assert len((await world.source()).status.history) == 1


async def test_a_commit_with_one_invalid_file_applies_nothing(world: World) -> None:
    await world.reconciler.reconcile("rack")
    bad = world.repo.commit(
        {
            "units/unit-1.yaml": unit(1, power="Off"),  # valid on its own
            "units/unit-2.yaml": unit(2).replace("slot: 2", "slot: 99"),
        },
        "switch unit-1 off, break unit-2",
    )
    outcome = await world.reconciler.reconcile("rack")
    assert outcome is not None and outcome.error
    assert await world.powers() == {"unit-1": "On", "unit-2": "On", "unit-3": "On"}
    status = (await world.source()).status
    assert status.last_applied_commit == world.first
    assert status.last_attempted_commit == bad
    stalled = find_condition(status.conditions, "Stalled")
    ready = find_condition(status.conditions, "Ready")
    assert stalled is not None and stalled.status == "True"
    assert ready is not None and ready.status == "False" and ready.reason == "ValidationFailed"
    assert "units/unit-2.yaml" in ready.message and "spec.slot" in ready.message
    assert [h.result for h in status.history] == ["Failed", "Applied"]
    events = await world.store.events("rack")
    assert any(e.reason == "ValidationFailed" and e.type == "Warning" for e in events)

    fixed = world.repo.commit({"units/unit-2.yaml": unit(2)}, "fix unit-2")
    await world.reconciler.reconcile("rack")
    assert (await world.powers())["unit-1"] == "Off"
    status = (await world.source()).status
    assert status.last_applied_commit == fixed
    assert find_condition(status.conditions, "Stalled") is None


async def test_yaml_that_does_not_parse_names_file_and_line(world: World) -> None:
    world.repo.commit({"rack.yaml": RACK + "  oops: [\n"}, "break yaml")
    await world.reconciler.reconcile("rack")
    ready = find_condition((await world.source()).status.conditions, "Ready")
    assert ready is not None and "rack.yaml: line" in ready.message and "YAML" in ready.message
    assert await world.store.list(Rack) == []


async def test_objects_removed_from_git_are_pruned_only_with_prune(world: World) -> None:
    await world.reconciler.reconcile("rack")
    world.repo.commit({"units/unit-3.yaml": None}, "retire unit-3")
    await world.set_spec(prune=False)
    await world.reconciler.reconcile("rack")
    assert "unit-3" in await world.powers()

    await world.set_spec(prune=True)
    outcome = await world.reconciler.reconcile("rack")
    assert outcome is not None and outcome.pruned == ("computeunit/unit-3",)
    assert sorted(await world.powers()) == ["unit-1", "unit-2"]
    assert "Pruned" in await world.reasons("rack")


async def test_manual_changes_are_reverted_and_reported_as_drift(world: World) -> None:
    await world.reconciler.reconcile("rack")
    unit2 = await world.store.get(ComputeUnit, "unit-2")
    unit2.spec.power = "Off"
    unit2.metadata.annotations["note"] = "someone's own annotation"
    await world.store.update(unit2)
    await world.store.delete(ComputeUnit, "unit-3")

    outcome = await world.reconciler.reconcile("rack")
    assert outcome is not None
    assert sorted(outcome.drifted) == ["computeunit/unit-2", "computeunit/unit-3"]
    assert await world.powers() == {"unit-1": "On", "unit-2": "On", "unit-3": "On"}
    kept = await world.store.get(ComputeUnit, "unit-2")
    assert kept.metadata.annotations["note"] == "someone's own annotation"
    drift = [e for e in await world.store.events("unit-2") if e.reason == "DriftReverted"]
    assert drift and "spec.power" in drift[0].message and drift[0].type == "Warning"
    assert "DriftReverted" in await world.reasons("rack")


async def test_drift_is_repaired_even_while_the_newest_commit_is_invalid(world: World) -> None:
    await world.reconciler.reconcile("rack")
    world.repo.commit({"rack.yaml": "kind: Rack\n"}, "broken")
    unit1 = await world.store.get(ComputeUnit, "unit-1")
    unit1.spec.power = "Off"
    await world.store.update(unit1)
    await world.reconciler.reconcile("rack")
    assert (await world.powers())["unit-1"] == "On"


async def test_suspend_pauses_and_resume_applies(world: World) -> None:
    await world.reconciler.reconcile("rack")
    await world.set_spec(suspend=True)
    newer = world.repo.commit({"units/unit-1.yaml": unit(1, power="Off")}, "unit-1 off")
    await world.reconciler.reconcile("rack")
    assert (await world.powers())["unit-1"] == "On"
    source = await world.source()
    reconciling = find_condition(source.status.conditions, "Reconciling")
    assert reconciling is not None and reconciling.reason == "Suspended"
    assert source.status.last_applied_commit == world.first

    await world.set_spec(suspend=False)
    await world.reconciler.reconcile("rack")
    assert (await world.powers())["unit-1"] == "Off"
    assert (await world.source()).status.last_applied_commit == newer


async def test_a_missing_repository_or_branch_stalls_with_a_clear_message(world: World) -> None:
    await add_source(world.store, "gone", localPath=str(world.repo.path / "nowhere"))
    await add_source(world.store, "nobranch", localPath=str(world.repo.path), branch="release")
    for name, needle in (("gone", "does not exist"), ("nobranch", "branch 'release' not found")):
        outcome = await world.reconciler.reconcile(name)
        assert outcome is not None and outcome.error
        status = (await world.source(name)).status
        stalled = find_condition(status.conditions, "Stalled")
        assert stalled is not None and stalled.reason == "SourceUnavailable"
        assert needle in stalled.message
        assert status.last_applied_commit is None
    assert await world.store.list(Rack) == []


async def test_objects_of_another_source_are_not_taken_over(world: World) -> None:
    await world.reconciler.reconcile("rack")
    await add_source(world.store, "rival", localPath=str(world.repo.path))
    outcome = await world.reconciler.reconcile("rival")
    assert outcome is not None and outcome.error and "managed by GitSource rack" in outcome.error
    ready = find_condition((await world.source("rival")).status.conditions, "Ready")
    assert ready is not None and ready.status == "False"
    rack = await world.store.get(Rack, "rack-1")
    assert rack.metadata.labels[OWNER_LABEL] == "rack"


async def test_existing_unowned_objects_are_adopted(world: World) -> None:
    rack = validate(Rack, {"metadata": {"name": "rack-1"}, "spec": {"psuRatedWatts": 100}})
    await world.store.create(rack)
    await world.reconciler.reconcile("rack")
    adopted = await world.store.get(Rack, "rack-1")
    assert adopted.spec.psu_rated_watts == 60 and adopted.metadata.labels[OWNER_LABEL] == "rack"


async def test_only_the_folder_named_by_path_is_applied(world: World) -> None:
    world.repo.commit({"other/unit-9.yaml": unit(9)}, "another rack's unit")
    await world.set_spec(path="units")
    await world.reconciler.reconcile("rack")
    assert sorted(await world.powers()) == ["unit-1", "unit-2", "unit-3"]
    assert await world.store.list(Rack) == []
    await world.set_spec(path="nope")
    outcome = await world.reconciler.reconcile("rack")
    assert outcome is not None and outcome.error and "path nope not found" in outcome.error


async def test_a_url_source_is_mirrored_and_applied(world: World) -> None:
    await add_source(world.store, "remote", url=f"file://{world.repo.path}", prune=False)
    cache = world.repo.path.parent / "cache"
    from racklet.gitops import GitSourceReconciler

    reconciler = GitSourceReconciler(world.applier, cache_dir=cache)
    outcome = await reconciler.reconcile("remote")
    assert outcome is not None and outcome.error is None and outcome.commit == world.first
    assert sorted(await world.powers()) == ["unit-1", "unit-2", "unit-3"]
    assert to_dict(await world.source("remote"))["status"]["lastAppliedCommit"] == world.first
