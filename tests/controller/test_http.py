"""The HTTP API: auth, Status errors, merge-patch of power, power-cycle, metrics, heartbeats."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from racklet.api import (
    POWER_CYCLE_ANNOTATION,
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ComputeUnitStatus,
    Event,
    ObjectMeta,
    Rack,
    RackSpec,
)
from racklet.controller import ControllerMetrics, HeartbeatRegistry
from racklet.controller._heartbeats import SETTLE_BEATS, HeartbeatBody
from racklet.controller._http import create_api_app, create_machine_app
from racklet.controller._resources_http import merge_patch
from racklet.limits import LIMITS
from racklet.metrics import OPENMETRICS
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from racklet.store import MemoryStore
from tests.controller.harness import machine_listener_tls, make
from tests.promtool import check_both_formats

TOKEN = "t0ken-for-tests"


@dataclass
class Api:
    http: httpx.AsyncClient
    store: MemoryStore
    metrics: ControllerMetrics
    queued: list[tuple[str, str]]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    store = MemoryStore()
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psuRatedWatts=40)))
    for slot in (1, 2):
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=f"unit-{slot}"),
                spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url="https://127.0.0.1:1")),
            )
        )
    metrics = ControllerMetrics()
    queued: list[tuple[str, str]] = []
    app = create_api_app(
        store,
        token=TOKEN,
        metrics=metrics,
        enqueue=lambda kind, name: queued.append((kind, name)),
        rack_name="rack-1",
    )
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="https://controller.test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    yield Api(http, store, metrics, queued)
    await http.aclose()
    await store.close()


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
async def test_api_needs_the_bearer_token(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(
        transport=api.http._transport, base_url="https://controller.test", headers=headers
    ) as bare:
        response = await bare.get("/api/v1/computeunits")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["kind"] == "Status" and response.json()["reason"] == "Unauthorized"
        assert (await bare.get("/api/v1/nothing")).status_code == 401
        # the page's files and the metrics are open and read-only; its data is not
        assert (await bare.get("/metrics")).status_code == 200
        assert (await bare.get("/app.js")).status_code == 200
        assert (await bare.get("/ui/v1/units")).status_code == 401


async def test_lists_and_gets(api: Api) -> None:
    units = (await api.http.get("/api/v1/computeunits")).json()
    assert units["kind"] == "ComputeUnitList"
    assert [u["metadata"]["name"] for u in units["items"]] == ["unit-1", "unit-2"]
    unit = (await api.http.get("/api/v1/computeunits/unit-2")).json()
    assert unit["spec"]["slot"] == 2 and unit["metadata"]["resourceVersion"]
    racks = (await api.http.get("/api/v1/racks")).json()["items"]
    assert racks[0]["spec"]["psuRatedWatts"] == 40
    assert (await api.http.get("/api/v1/racks/rack-1")).json()["kind"] == "Rack"


async def test_not_found_is_a_status(api: Api) -> None:
    response = await api.http.get("/api/v1/computeunits/unit-9")
    assert response.status_code == 404
    assert response.json() == {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": 404,
        "reason": "NotFound",
        "message": 'computeunit "unit-9" not found',
    }
    assert (await api.http.get("/api/v1/nothing")).json()["code"] == 404


async def test_patch_power_and_its_validation(api: Api) -> None:
    response = await api.http.patch("/api/v1/computeunits/unit-1", json={"spec": {"power": "Off"}})
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["power"] == "Off"
    assert response.json()["metadata"]["generation"] == 2
    assert (await api.store.get(ComputeUnit, "unit-1")).spec.power == "Off"
    assert api.queued == [("ComputeUnit", "unit-1")]

    bad = await api.http.patch("/api/v1/computeunits/unit-1", json={"spec": {"power": "Of"}})
    assert bad.status_code == 422
    assert bad.json()["message"] == "spec.power: Input should be 'On' or 'Off'"
    assert bad.json()["details"]["causes"][0]["field"] == "spec.power"

    frozen = await api.http.patch("/api/v1/computeunits/unit-1", json={"spec": {"slot": 5}})
    assert frozen.status_code == 422
    assert frozen.json()["message"] == "spec.slot: field is immutable"

    garbage = await api.http.patch("/api/v1/computeunits/unit-1", content=b"{not json")
    assert garbage.status_code == 400 and garbage.json()["message"].startswith("body: not JSON")
    for body in (b"[1]", b'"On"'):
        wrong = await api.http.patch("/api/v1/computeunits/unit-1", content=body)
        assert wrong.status_code == 422 and wrong.json()["kind"] == "Status"

    missing = await api.http.patch("/api/v1/computeunits/unit-9", json={"spec": {"power": "On"}})
    assert missing.status_code == 404
    assert (await api.store.get(ComputeUnit, "unit-1")).spec.power == "Off"


async def test_patch_with_a_stale_resource_version_conflicts(api: Api) -> None:
    unit = await api.store.get(ComputeUnit, "unit-1")
    stale = unit.metadata.resource_version
    unit.status.phase = "Off"
    await api.store.update_status(unit)
    response = await api.http.patch(
        "/api/v1/computeunits/unit-1",
        json={"metadata": {"resourceVersion": stale}, "spec": {"power": "Off"}},
    )
    assert response.status_code == 409 and response.json()["reason"] == "Conflict"


async def test_power_cycle_sets_the_annotation(api: Api) -> None:
    response = await api.http.post("/api/v1/computeunits/unit-2/power-cycle")
    assert response.status_code == 202
    request_id = response.json()["details"]["requestId"]
    unit = await api.store.get(ComputeUnit, "unit-2")
    assert unit.metadata.annotations[POWER_CYCLE_ANNOTATION] == request_id
    again = await api.http.post("/api/v1/computeunits/unit-2/power-cycle")
    assert again.json()["details"]["requestId"] != request_id
    assert (await api.http.post("/api/v1/computeunits/unit-9/power-cycle")).status_code == 404


async def test_events_by_name(api: Api) -> None:
    await api.store.record_event(Event.about("ComputeUnit", "unit-1", "PowerOn", "on"))
    await api.store.record_event(Event.about("ComputeUnit", "unit-2", "Off", "off"))
    items = (await api.http.get("/api/v1/events", params={"name": "unit-1"})).json()["items"]
    assert [(e["reason"], e["involvedObject"]["name"]) for e in items] == [("PowerOn", "unit-1")]
    bad = await api.http.get("/api/v1/events", params={"limit": "lots"})
    assert bad.status_code == 422 and bad.json()["message"].startswith("limit:")


async def test_metrics_are_openmetrics(api: Api) -> None:
    api.metrics.unit(
        "unit-1",
        ComputeUnitStatus(
            phase="Running", powerWatts=2.5, energyJoules=10, temperatureCelsius=41, cpuLoad=0.5
        ),
    )
    api.metrics.rack(await api.store.get(Rack, "rack-1"))
    api.metrics.reconcile_result("success")
    await check_both_formats(api.http, "/metrics")
    response = await api.http.get("/metrics", headers={"Accept": OPENMETRICS})
    assert response.headers["content-type"].startswith(
        "application/openmetrics-text; version=1.0.0"
    )
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("racklet_unit_power_watts", (("unit", "unit-1"),))] == 2.5
    assert samples[("racklet_unit_cpu_load", (("unit", "unit-1"),))] == 0.5
    assert samples[("racklet_unit_energy_joules_total", (("unit", "unit-1"),))] == 10
    assert samples[("racklet_unit_phase", (("phase", "Running"), ("unit", "unit-1")))] == 1
    assert samples[("racklet_unit_phase", (("phase", "Off"), ("unit", "unit-1")))] == 0
    assert samples[("racklet_busbar_rated_watts", ())] == 40
    assert samples[("racklet_controller_reconcile_total", (("result", "success"),))] == 1
    assert "racklet_busbar_energy_joules" in families


async def test_live_page_and_its_data(api: Api) -> None:
    page = await api.http.get("/")
    assert page.status_code == 200 and "/app.js" in page.text
    script = await api.http.get("/app.js")
    assert script.status_code == 200 and "/ui/v1/watch" in script.text
    unit = await api.store.get(ComputeUnit, "unit-2")
    unit.status.phase, unit.status.power_watts = "Running", 2.0
    await api.store.update_status(unit)
    data = (await api.http.get("/ui/v1/units")).json()
    assert data["rack"]["psuRatedWatts"] == 40
    assert [(u["name"], u["phase"], u["powerWatts"]) for u in data["units"]] == [
        ("unit-1", "Unknown", None),
        ("unit-2", "Running", 2.0),
    ]


def test_merge_patch_follows_rfc_7386() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {
        "a": {"c": 2, "d": 3}
    }
    assert merge_patch({"a": 1}, [1]) == [1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_heartbeat_needs_the_units_own_certificate(tmp_path: Path) -> None:
    ca = RackCA.create(tmp_path / "pki")
    ca_path = tmp_path / "pki" / "ca.crt"
    key, crt = ca.issue("racklet-controller", role="controller").write(tmp_path, "server")
    unit_key, unit_crt = ca.issue("unit-1", role="unit/unit-1", client=True).write(
        tmp_path, "unit-1"
    )
    heartbeats = HeartbeatRegistry()
    queued: list[tuple[str, str]] = []
    app = create_machine_app(heartbeats, enqueue=lambda k, n: queued.append((k, n)))
    port = _free_port()
    server = AppServer(
        app,
        port=port,
        ssl_context=server_context(crt, key, ca=ca_path, require_client_cert=True),
        name="machine",
    )
    await server.start()
    body = {
        "unit": "unit-1",
        "agentUrl": "https://127.0.0.1:4000",
        "osVersion": "racklet-os 1.0",
        "uptimeSeconds": 3.5,
        "temperatureCelsius": 40.0,
        "cpuLoad": 0.1,
    }
    url = f"https://127.0.0.1:{port}/machine/v1/heartbeat"
    try:
        async with httpx.AsyncClient(verify=client_context(ca_path, unit_crt, unit_key)) as unit:
            response = await unit.post(url, json=body)
            assert response.status_code == 200, response.text
            beat = heartbeats.latest("unit-1")
            assert beat is not None and beat.body.os_version == "racklet-os 1.0"
            assert queued == [("ComputeUnit", "unit-1")]

            impostor = await unit.post(url, json={**body, "unit": "unit-2"})
            assert impostor.status_code == 403 and impostor.json()["kind"] == "Status"
            assert heartbeats.latest("unit-2") is None

            invalid = await unit.post(url, json={"unit": "unit-1"})
            assert invalid.status_code == 422 and "agentUrl" in invalid.json()["message"]
            garbled = await unit.post(url, content=b"{not json")
            assert garbled.status_code == 400 and garbled.json()["kind"] == "Status"
            huge = await unit.post(url, content=b" " * (LIMITS.max_small_body_bytes + 1))
            assert huge.status_code == 413 and huge.json()["kind"] == "Status"
            wrong = await unit.get(url)
            assert wrong.status_code == 405 and wrong.json()["kind"] == "Status"
    finally:
        await server.stop()


async def test_a_heartbeat_queues_a_look_only_when_it_is_news(tmp_path: Path) -> None:
    """Over the real machine listener, against the unit reconciler: of a run of heartbeats
    that say the same, only the first (the OS's first since the last look) queues the unit;
    a new OS version, a moved load and the first beat after silence each queue it once more.
    Every queued look is run, as the runtime would, so the status follows each."""
    h = await make(["unit-1"])
    context, unit_tls = machine_listener_tls(tmp_path)
    queued: list[tuple[str, str]] = []
    app = create_machine_app(h.heartbeats, enqueue=lambda k, n: queued.append((k, n)))
    port = _free_port()
    server = AppServer(app, port=port, ssl_context=context, name="machine")
    await server.start()
    url = f"https://127.0.0.1:{port}/machine/v1/heartbeat"
    body = {"unit": "unit-1", "agentUrl": "https://127.0.0.1:4000", "osVersion": "1.0",
            "cpuLoad": 0.05, "heartbeatIntervalSeconds": 2.0}  # fmt: skip
    uptime = 0.0

    async def beat(unit: httpx.AsyncClient, **change: object) -> int:
        """One heartbeat; how many looks it queued (each is run)."""
        nonlocal uptime
        uptime += 2.0
        h.clock.now += 0.1
        before = len(queued)
        sent = {**body, "uptimeSeconds": uptime, "temperatureCelsius": 40 + uptime % 3, **change}
        assert (await unit.post(url, json=sent)).status_code == 200
        for _ in queued[before:]:
            await h.reconcile("unit-1")
        return len(queued) - before

    try:
        h.bmc.power_on("unit-1")
        h.bmc.units["unit-1"].last_state = "OSBootStarted"
        await h.reconcile("unit-1")
        async with httpx.AsyncClient(verify=unit_tls) as unit:
            # the OS heartbeats before its BMC says it runs: the look cannot count it, so the
            # next heartbeat is news again
            assert await beat(unit) == 1
            assert (await h.unit("unit-1")).status.phase == "Booting"
            h.bmc.units["unit-1"].last_state = "OSRunning"
            assert await beat(unit) == 1
            assert (await h.unit("unit-1")).status.phase == "Running"
            assert [await beat(unit) for _ in range(10)] == [0] * 10  # nothing new in them

            assert await beat(unit, osVersion="1.1") == 1
            assert (await h.unit("unit-1")).status.os_version == "1.1"
            body["osVersion"] = "1.1"
            assert await beat(unit, cpuLoad=0.054) == 0  # a drift: shown at the next look
            assert await beat(unit, cpuLoad=0.75) == 1  # a stress job took the cores
            assert (await h.unit("unit-1")).status.cpu_load == 0.75
            body["cpuLoad"] = 0.75
            # the draw follows the load at the BMC's next power sample: a few more looks
            assert [await beat(unit) for _ in range(SETTLE_BEATS + 2)] == [1] * SETTLE_BEATS + [
                0,
                0,
            ]

            h.clock.now += 30  # silent: the stale wake-up looks and finds it Unreachable
            await h.reconcile("unit-1")
            assert (await h.unit("unit-1")).status.phase == "Unreachable"
            assert await beat(unit) == 1
            assert (await h.unit("unit-1")).status.phase == "Running"
            assert await beat(unit) == 0
    finally:
        await server.stop()
        await h.close()
    assert set(queued) == {("ComputeUnit", "unit-1")}


def test_a_followed_unit_s_every_heartbeat_is_news() -> None:
    """While a power plan of its rack works from fresh readings, a unit's heartbeats keep the
    looks coming even when they say nothing new; afterwards they wait for news again."""
    heartbeats = HeartbeatRegistry()
    body = HeartbeatBody(unit="unit-1", agentUrl="https://127.0.0.1:1", osVersion="1.0")
    heartbeats.looked("unit-1", heartbeats.record(body), counted=True)
    heartbeats.record(body)
    assert not heartbeats.news("unit-1")
    heartbeats.follow("unit-1", True)
    assert heartbeats.news("unit-1")
    heartbeats.follow("unit-1", False)
    assert not heartbeats.news("unit-1")
