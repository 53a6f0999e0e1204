"""The unit OS end to end: bootstrap over mutual TLS, then the agent's metrics and heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import racklet.node as node
from racklet.boot import BootedPayload
from racklet.boot.client import bootstrap
from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRegistry
from racklet.controller._workloads import VmConsoles
from racklet.hw import Activity
from racklet.metrics import OPENMETRICS
from racklet.net import client_context
from racklet.node import run_os
from racklet.pki import write_crl
from racklet.store import MemoryStore
from tests.boot.fakes import BootRig, FakeBmc, FakeHost, wait_for
from tests.promtool import check_both_formats


async def _scrape(rig: BootRig, host: FakeHost) -> httpx.Response:
    async with rig.client(None) as client:
        url = f"https://127.0.0.1:{host.agent_port}/metrics"
        await check_both_formats(client, url)
        return await client.get(url, headers={"Accept": OPENMETRICS})


def _families(text: str) -> dict[str, Metric]:
    parsed = text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
    return {family.name: family for family in parsed}


async def _refused(rig: BootRig, host: FakeHost) -> bool:
    try:
        await _scrape(rig, host)
    except httpx.ConnectError:
        return True
    return False


@contextlib.asynccontextmanager
async def _running(host: FakeHost, booted: BootedPayload) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run_os(host, booted))
    try:
        await wait_for(
            lambda: any("racklet-agent:" in line for line in host.lines) or task.done(),
            "the OS agent starting",
        )
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_public_surface_is_pinned() -> None:
    assert set(node.__all__) == {"AgentServerError", "NodeError", "run_os"}


async def test_boot_run_scrape_heartbeat_and_halt(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    host.size = (2, 1024)
    booted = await bootstrap(host)
    async with _running(host, booted) as task:
        await wait_for(lambda: len(rig.heartbeats) >= 2, "two heartbeats")
        beat = rig.heartbeats[0]
        assert (beat.body["cores"], beat.body["memoryMiB"]) == (2, 1024)  # the board's size
        assert beat.peer == "unit-1"
        assert beat.body["unit"] == beat.peer
        assert beat.body["agentUrl"] == f"https://127.0.0.1:{host.agent_port}"
        assert beat.body["osVersion"] == "0.1.0"
        assert beat.body["temperatureCelsius"] == pytest.approx(41.5)
        assert beat.body["cpuLoad"] == pytest.approx(0.25)
        assert rig.heartbeats[1].body["uptimeSeconds"] > beat.body["uptimeSeconds"]
        assert "OSRunning" in [r["state"] for r in bmc.ops("progress")]

        host.temperature = 55.25
        response = await _scrape(rig, host)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(
            "application/openmetrics-text; version=1.0.0"
        )
        families = _families(response.text)
        temperature = families["racklet_unit_temperature_celsius"].samples
        assert [(s.labels, s.value) for s in temperature] == [({"unit": "unit-1"}, 55.25)]
        assert families["racklet_node_cpu_load"].samples[0].value == pytest.approx(0.25)
        assert families["racklet_node_uptime_seconds"].samples[0].value > 0
        beats = {
            s.labels["result"]: s.value
            for s in families["racklet_node_heartbeats"].samples
            if s.name.endswith("_total")
        }
        assert beats["ok"] >= 2 and beats["error"] == 0
        info = families["racklet_node_info"]
        assert info.type == "gauge"
        assert info.samples[0].labels == {"unit": "unit-1", "version": "0.1.0"}
        assert info.samples[0].value == 1

        host.shutdown = True
        await asyncio.wait_for(task, timeout=20)
    assert host.activities[-1] is Activity.HALTED
    assert any("System halted" in line for line in host.lines)
    assert await _refused(rig, host)


async def test_heartbeat_failures_are_retried_and_never_crash(rig: BootRig, host: FakeHost) -> None:
    rig.heartbeat_status = 503
    booted = await bootstrap(host)
    async with _running(host, booted) as task:
        await wait_for(lambda: len(rig.heartbeats) >= 2, "refused heartbeats")
        assert not task.done()
        rig.heartbeat_status = 204
        refused = len(rig.heartbeats)
        await wait_for(lambda: len(rig.heartbeats) > refused, "a heartbeat after recovery")

        async def counts() -> dict[str, float]:
            response = await _scrape(rig, host)
            families = _families(response.text)
            samples = families["racklet_node_heartbeats"].samples
            return {s.labels["result"]: s.value for s in samples if s.name.endswith("_total")}

        async def recovered() -> bool:
            current = await counts()
            return current["ok"] >= 1 and current["error"] >= 2

        deadline = asyncio.get_running_loop().time() + 20
        while not await recovered():
            assert asyncio.get_running_loop().time() < deadline, "ok heartbeat never counted"
            await asyncio.sleep(0.01)
        assert not task.done()


async def test_unreachable_controller_does_not_stop_the_os(rig: BootRig, host: FakeHost) -> None:
    booted = await bootstrap(host)
    await rig.stop()
    async with _running(host, booted) as task:
        response = await _scrape(rig, host)
        assert response.status_code == 200
        host.shutdown = True
        await asyncio.wait_for(task, timeout=20)
    assert host.activities[-1] is Activity.HALTED


async def test_power_cut_stops_everything_and_propagates(rig: BootRig, host: FakeHost) -> None:
    booted = await bootstrap(host)
    task = asyncio.create_task(run_os(host, booted))
    await wait_for(lambda: bool(rig.heartbeats), "a heartbeat")
    assert (await _scrape(rig, host)).status_code == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _refused(rig, host)
    assert Activity.HALTED not in host.activities
    seen = len(rig.heartbeats)
    await host.clock.sleep(3 * booted.agent.heartbeat_interval_seconds)
    assert len(rig.heartbeats) == seen


async def test_the_agent_following_the_crl_keeps_its_key_copy_private_until_it_stops(
    rig: BootRig, host: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "shm"
    scratch.mkdir()
    monkeypatch.setattr("racklet.boot._identity._scratch_root", lambda: str(scratch))
    crl = write_crl(rig.ca, rig.ca_path.parent)
    booted = await bootstrap(host)
    task = asyncio.create_task(run_os(host, booted, crl=crl))
    await wait_for(lambda: bool(rig.heartbeats), "a heartbeat")
    assert (await _scrape(rig, host)).status_code == 200  # a scrape needs no certificate
    # The agent's listener and the peer server (racklet.node._p2p) rebuild from these on a
    # CRL change: one private directory each.
    held = list(scratch.iterdir())
    assert len(held) == 2
    assert {stat.S_IMODE(d.stat().st_mode) for d in held} == {0o700}
    assert {stat.S_IMODE(f.stat().st_mode) for d in held for f in d.iterdir()} == {0o600}
    task.cancel()  # a power cut
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _refused(rig, host)
    assert list(scratch.iterdir()) == []


async def test_taken_agent_port_is_reported_and_the_os_keeps_running(
    rig: BootRig, host: FakeHost
) -> None:
    booted = await bootstrap(host)
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", host.agent_port)
    try:
        async with _running(host, booted) as task:
            await wait_for(lambda: bool(rig.heartbeats), "a heartbeat without an agent server")
            assert any("cannot listen" in line for line in host.lines)
            host.shutdown = True
            await asyncio.wait_for(task, timeout=20)
    finally:
        blocker.close()
        await blocker.wait_closed()
    assert host.activities[-1] is Activity.HALTED


async def test_a_stress_job_in_a_heartbeat_reply_runs_once_then_lets_go(
    rig: BootRig, host: FakeHost
) -> None:
    booted = await bootstrap(host)
    job = {"id": "job-1", "cpu": 0.75, "seconds": 40.0}  # 2 s of wall time at speed 20
    rig.heartbeat_status = 200  # a reply with a body
    rig.heartbeat_reply = {"code": 200, "details": {"stressJob": job}}
    async with _running(host, booted):
        await wait_for(lambda: host.load == 0.75, "the stress job to load the cores")
        await wait_for(
            lambda: any(b.body.get("stressJob") == "job-1" for b in rig.heartbeats),
            "a heartbeat naming the job taken",
        )
        taken = [line for line in host.lines if "stress 75%" in line]
        await wait_for(lambda: host.load == 0.25, "the load to return after 40 s")
        assert any("stress job job-1 done" in line for line in host.lines)
        beats = len(rig.heartbeats)
        await wait_for(lambda: len(rig.heartbeats) >= beats + 2, "more heartbeats, same reply")
        assert host.load == 0.25, "a job already taken is not run again"
        assert [line for line in host.lines if "stress 75%" in line] == taken

        rig.heartbeat_reply = {"details": {"stressJob": {"id": "job-2", "cpu": 7, "seconds": 5}}}
        beats = len(rig.heartbeats)
        await wait_for(lambda: len(rig.heartbeats) >= beats + 2, "heartbeats with a bad job")
        assert host.load == 0.25, "a malformed job is ignored"
        host.shutdown = True


async def test_the_os_serves_its_payload_to_peers_and_reports_the_peers_its_boot_dropped(
    rig: BootRig, host: FakeHost
) -> None:
    """The heartbeat names the payload and the peer server (racklet.node._p2p) that serves
    it, and carries the peers the boot dropped until a controller took them."""
    booted = await bootstrap(host)
    booted = dataclasses.replace(booted, dropped_peers=(("unit-3", "served bad bytes"),))
    async with _running(host, booted):
        await wait_for(lambda: len(rig.heartbeats) >= 2, "two heartbeats")
        first, second = rig.heartbeats[0].body, rig.heartbeats[1].body
        assert first["payloadSha256"] == booted.manifest.payload_sha256
        assert first["droppedPeers"] == [{"unit": "unit-3", "reason": "served bad bytes"}]
        assert "droppedPeers" not in second
        cert, key = rig.client_identity_files("unit-2")
        async with httpx.AsyncClient(verify=client_context(rig.ca_path, cert, key)) as client:
            answer = await client.get(
                f"{first['peerUrl']}/boot/v1/targets/{booted.manifest.payload_sha256}",
                headers={"Range": "bytes=0-99"},
            )
        assert (answer.status_code, answer.content) == (206, rig.payload[:100])


async def test_a_vm_whose_phase_changes_is_reported_at_once_not_at_the_next_interval(
    rig: BootRig, host: FakeHost
) -> None:
    """The agent's heartbeat goes out when a VM's phase changes (here: assigned, so
    Starting; then Failed, its image not on the rack's TUF server), not one interval
    later: with an hour's interval, only an early beat can carry either report."""
    booted = await bootstrap(host)
    hour = dataclasses.replace(booted.agent, heartbeat_interval_seconds=3600.0)
    booted = dataclasses.replace(booted, agent=hour)
    vm = {
        "name": "moving",
        "attempt": 1,
        "image": "vm-images/busybox/9.9.9/image.tar",
        "vcpus": 1,
        "memoryMiB": 128,
        "leaseSeconds": 600,
    }
    rig.heartbeat_status = 200
    rig.heartbeat_reply = {"code": 200, "details": {"microvms": [vm]}}

    def reported(phase: str) -> bool:
        return any(
            r.get("phase") == phase for b in rig.heartbeats for r in b.body.get("microvms", [])
        )

    async with _running(host, booted):
        await wait_for(lambda: reported("Failed"), "the VM's end, reported at once")
        assert reported("Starting")
        first_failed = next(
            i
            for i, b in enumerate(rig.heartbeats)
            if any(r.get("phase") == "Failed" for r in b.body.get("microvms", []))
        )
        assert first_failed >= 1  # the first beat took the assignment; later ones reported
        host.shutdown = True


async def test_the_controller_asks_for_a_heartbeat_at_once_and_nobody_else_can(
    rig: BootRig, host: FakeHost, tmp_path: Path
) -> None:
    """When the controller assigns the unit a VM it asks the agent for a heartbeat at once
    (``VmConsoles.beat_now``, over the agent's listener), whose reply carries the assignment:
    with an hour's interval only that request can bring the next beat. Another rack
    identity (a unit's) is refused."""
    booted = await bootstrap(host)
    hour = dataclasses.replace(booted.agent, heartbeat_interval_seconds=3600.0)
    booted = dataclasses.replace(booted, agent=hour)
    key, crt = rig.ca.issue("racklet-controller", role="controller", client=True).write(
        tmp_path, "controller"
    )
    beats = HeartbeatRegistry()
    agent = f"https://127.0.0.1:{host.agent_port}"
    beats.record(HeartbeatBody(unit="unit-1", agent_url=agent, os_version="0.1.0"))
    store = MemoryStore()
    controller = VmConsoles(store, beats, rig.ca_path, crt, key)
    try:
        async with _running(host, booted):
            await wait_for(lambda: len(rig.heartbeats) >= 1, "the first heartbeat")
            async with rig.client("unit-2") as other:
                refused = await other.post(f"{agent}/heartbeat")
            assert refused.status_code == 403
            await asyncio.sleep(0.2)
            assert len(rig.heartbeats) == 1
            controller.beat_now("unit-1")
            await wait_for(lambda: len(rig.heartbeats) >= 2, "the heartbeat asked for")
            host.shutdown = True
    finally:
        await controller.aclose()
        await store.close()
