"""The generic resource API over real HTTPS: CRUD, concurrency, selectors, status, watch."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet.controller import ControllerMetrics
from racklet.controller._http import create_api_app
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from racklet.store import MemoryStore, SqliteStore, Store

TOKEN = "t0ken-for-resource-tests"
SOURCES = "/api/v1/gitsources"


@dataclass
class Api:
    http: httpx.AsyncClient
    store: Store
    queued: list[tuple[str, str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["memory", "sqlite"])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    store: Store = (
        MemoryStore(history=20)
        if request.param == "memory"
        else SqliteStore(tmp_path / "s.db", history=20)
    )
    ca = RackCA.create(tmp_path / "pki")
    key, crt = ca.issue("racklet-controller", role="controller").write(tmp_path, "server")
    queued: list[tuple[str, str]] = []
    app = create_api_app(
        store,
        token=TOKEN,
        metrics=ControllerMetrics(),
        enqueue=lambda k, n: queued.append((k, n)),
        rack_name="rack-1",
    )
    port = _free_port()
    server = AppServer(app, port=port, ssl_context=server_context(crt, key), name="api")
    await server.start()
    http = httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{port}",
        verify=client_context(tmp_path / "pki" / "ca.crt"),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    try:
        yield Api(http, store, queued)
    finally:
        await http.aclose()
        await server.stop()
        await store.close()


def source(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "racklet.dev/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": name, "labels": labels},
        "spec": {"localPath": "/srv/rack.git"},
    }


async def test_create_get_update_delete(api: Api) -> None:
    created = await api.http.post(SOURCES, json=source("main", team="a"))
    assert created.status_code == 201, created.text
    meta = created.json()["metadata"]
    assert meta["uid"] and meta["generation"] == 1 and meta["creationTimestamp"]
    assert api.queued == [("GitSource", "main")]
    again = await api.http.post(SOURCES, json=source("main"))
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"

    body = created.json()
    body["spec"]["prune"] = True
    put = await api.http.put(f"{SOURCES}/main", json=body)
    assert put.status_code == 200 and put.json()["metadata"]["generation"] == 2
    same = await api.http.put(f"{SOURCES}/main", json={**put.json()})
    assert same.json()["metadata"]["generation"] == 2  # an unchanged spec keeps its generation

    stale = await api.http.put(f"{SOURCES}/main", json=body)  # body carries the old version
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    blind = source("main")  # no resourceVersion: unconditional
    blind["spec"]["branch"] = "lab"
    assert (await api.http.put(f"{SOURCES}/main", json=blind)).json()["spec"]["branch"] == "lab"

    deleted = await api.http.delete(f"{SOURCES}/main")
    assert deleted.status_code == 200 and deleted.json()["details"]["name"] == "main"
    assert (await api.http.get(f"{SOURCES}/main")).status_code == 404
    assert (await api.http.delete(f"{SOURCES}/main")).status_code == 404


async def test_yaml_bodies_and_bad_input(api: Api) -> None:
    manifest = "kind: GitSource\nmetadata: {name: from-yaml}\nspec: {url: 'https://g/r.git'}\n"
    created = await api.http.post(
        SOURCES, content=manifest, headers={"Content-Type": "application/yaml"}
    )
    assert created.status_code == 201, created.text
    broken = await api.http.post(
        SOURCES, content="kind: [", headers={"Content-Type": "application/yaml"}
    )
    assert broken.status_code == 400 and broken.json()["message"].startswith("body: not YAML")
    wrong = await api.http.post(SOURCES, json={**source("x"), "kind": "Rack"})
    assert wrong.status_code == 422 and wrong.json()["message"].startswith("kind: must be")
    typo = source("x")
    typo["spec"]["brnach"] = "main"
    answer = (await api.http.post(SOURCES, json=typo)).json()
    assert answer["code"] == 422
    assert answer["details"]["causes"] == [
        {"field": "spec.brnach", "message": "Extra inputs are not permitted"}
    ]
    bad_name = await api.http.post(SOURCES, json=source("Not_A_Name"))
    assert bad_name.json()["details"]["causes"][0]["field"] == "metadata.name"
    renamed = await api.http.put(f"{SOURCES}/from-yaml", json=source("other"))
    assert renamed.status_code == 422 and "metadata.name" in renamed.json()["message"]
    unknown = await api.http.get("/api/v1/pods")
    assert unknown.status_code == 404 and "gitsources" in unknown.json()["message"]
    kinds = (await api.http.get("/api/v1")).json()["resources"]
    assert {k["name"] for k in kinds} >= {"racks", "computeunits", "gitsources", "events"}


async def test_label_selectors(api: Api) -> None:
    for name, labels in (("a", {"tier": "web"}), ("b", {"tier": "db"}), ("c", {})):
        assert (await api.http.post(SOURCES, json=source(name, **labels))).status_code == 201

    async def names(selector: str) -> list[str]:
        answer = await api.http.get(SOURCES, params={"labelSelector": selector})
        assert answer.status_code == 200, answer.text
        return [o["metadata"]["name"] for o in answer.json()["items"]]

    assert await names("tier=web") == ["a"]
    assert await names("tier!=web") == ["b", "c"]
    assert await names("tier") == ["a", "b"]
    assert await names("!tier") == ["c"]
    bad = await api.http.get(SOURCES, params={"labelSelector": "tier in (web)"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("labelSelector:")


async def test_status_is_a_subresource(api: Api) -> None:
    await api.http.post(SOURCES, json=source("s"))
    ignored = await api.http.patch(
        f"{SOURCES}/s", json={"spec": {"suspend": True}, "status": {"lastAppliedCommit": "abc"}}
    )
    assert ignored.json()["spec"]["suspend"] is True
    assert ignored.json()["status"]["lastAppliedCommit"] is None
    status = await api.http.patch(
        f"{SOURCES}/s/status",
        json={"status": {"lastAppliedCommit": "abc", "observedGeneration": 2}, "spec": {}},
    )
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["status"]["lastAppliedCommit"] == "abc" and body["metadata"]["generation"] == 2
    body["status"]["lastAppliedCommit"] = "def"
    body["spec"]["suspend"] = False  # ignored on /status
    put = (await api.http.put(f"{SOURCES}/s/status", json=body)).json()
    assert put["status"]["lastAppliedCommit"] == "def" and put["spec"]["suspend"] is True
    bad = await api.http.patch(f"{SOURCES}/s/status", json={"status": {"history": "x"}})
    assert bad.status_code == 422 and bad.json()["message"].startswith("status.history")


async def _lines(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for line in response.aiter_lines():
        if line:
            event = json.loads(line)
            if event["type"] != "BOOKMARK":
                out.append(event)
        if len(out) == count:
            break
    return out


async def test_watch_streams_and_resumes(api: Api) -> None:
    await api.http.post(SOURCES, json=source("first", tier="web"))
    listed = (await api.http.get(SOURCES)).json()
    since = listed["metadata"]["resourceVersion"]

    async with api.http.stream("GET", SOURCES, params={"watch": "true"}) as initial:
        assert initial.headers["content-type"].startswith("application/x-ndjson")
        [added] = await _lines(initial, 1)
        assert added["type"] == "ADDED" and added["object"]["metadata"]["name"] == "first"

    params = {"watch": "true", "resourceVersion": since}
    async with api.http.stream("GET", SOURCES, params=params) as watch:
        writer = asyncio.create_task(_three_writes(api))
        events = await asyncio.wait_for(_lines(watch, 3), 10)
        await writer
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "second"),
        ("MODIFIED", "first"),
        ("DELETED", "second"),
    ]
    # resume from the middle: only what came after
    middle = events[0]["object"]["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": middle}
    async with api.http.stream("GET", SOURCES, params=params) as resumed:
        rest = await asyncio.wait_for(_lines(resumed, 2), 10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in rest] == [
        ("MODIFIED", "first"),
        ("DELETED", "second"),
    ]


async def _three_writes(api: Api) -> None:
    await api.http.post(SOURCES, json=source("second"))
    await api.http.patch(f"{SOURCES}/first", json={"spec": {"prune": True}})
    await api.http.delete(f"{SOURCES}/second")


async def test_watch_with_selector_and_expired_version(api: Api) -> None:
    await api.http.post(SOURCES, json=source("web", tier="web"))
    since = (await api.http.get(SOURCES)).json()["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": since, "labelSelector": "tier=web"}
    async with api.http.stream("GET", SOURCES, params=params) as watch:
        await api.http.post(SOURCES, json=source("db", tier="db"))
        await api.http.patch(f"{SOURCES}/web", json={"spec": {"prune": True}})
        await api.http.patch(f"{SOURCES}/web", json={"metadata": {"labels": {"tier": "db"}}})
        events = await asyncio.wait_for(_lines(watch, 2), 10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "web"),
        ("DELETED", "web"),  # it stopped matching
    ]
    for index in range(25):  # more writes than the store's history of 20
        await api.http.patch(f"{SOURCES}/db", json={"spec": {"branch": f"b{index}"}})
    gone = await api.http.get(SOURCES, params={"watch": "true", "resourceVersion": since})
    assert gone.status_code == 410 and gone.json()["reason"] == "Expired"
    bad = await api.http.get(SOURCES, params={"watch": "true", "resourceVersion": "soon"})
    assert bad.status_code == 400


async def test_events_can_be_recorded_and_filtered(api: Api) -> None:
    body = {
        "involvedObject": {"kind": "GitSource", "name": "main"},
        "type": "Warning",
        "reason": "InvalidManifest",
        "message": "units.yaml: spec.slot: Input should be less than or equal to 16",
    }
    assert (await api.http.post("/api/v1/events", json=body)).status_code == 201
    assert (await api.http.post("/api/v1/events", json=body)).json()["count"] == 2
    items = (await api.http.get("/api/v1/events", params={"kind": "GitSource"})).json()["items"]
    assert [(e["reason"], e["count"]) for e in items] == [("InvalidManifest", 2)]
    assert (await api.http.get("/api/v1/events", params={"kind": "Rack"})).json()["items"] == []
    bad = await api.http.post("/api/v1/events", json={"reason": "x"})
    assert bad.status_code == 422 and "involvedObject" in bad.json()["message"]
