"""schemathesis over the controller's API, from the OpenAPI document the API serves.

A real API (SQLite store, TLS, bearer token) runs on 127.0.0.1 in a thread of its own with a
loop-lag probe beside it; schemathesis loads ``/openapi/v3`` over HTTPS and sends every
operation generated requests, valid and not, authenticated. Whatever it sends: never a 5xx,
every error a Kubernetes ``Status``, and no request blocks the event loop for 100 ms.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, GitSource, ObjectMeta, Rack, RackSpec
from racklet.controller import ControllerMetrics
from racklet.controller._http import create_api_app
from racklet.net import AppServer, server_context
from racklet.pki import RackCA
from racklet.store import MemoryStore, SqliteStore
from tests.lag_probe import LagProbe

TOKEN = "fuzz-t0ken"
MAX_BLOCKED = 0.100
EXAMPLES = 8


@dataclass
class Served:
    url: str
    ca: Path
    probe: LagProbe
    loop: asyncio.AbstractEventLoop

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The API in a thread with its own event loop (schemathesis' client is synchronous)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    ca = RackCA.create(tmp / "pki")
    key, crt = ca.issue("racklet-controller").write(tmp, "server")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-under-fuzz", daemon=True)
    thread.start()
    probe = LagProbe()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    store = SqliteStore(tmp / "store.db", history=50)

    async def start() -> AppServer:
        for obj in (
            Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=60)),
            ComputeUnit(
                metadata=ObjectMeta(name="unit-1"),
                spec=ComputeUnitSpec(slot=1, bmc=BmcRef(url="https://127.0.0.1:1")),
            ),
            GitSource.model_validate(
                {"metadata": {"name": "main"}, "spec": {"localPath": "/srv/rack.git"}}
            ),
        ):
            await store.create(obj)
        app = create_api_app(
            store,
            token=TOKEN,
            metrics=ControllerMetrics(),
            enqueue=lambda kind, name: None,
            rack_name="rack-1",
        )
        server = AppServer(app, port=port, ssl_context=server_context(crt, key), name="api")
        await server.start()
        probe.start()
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    try:
        yield Served(f"https://127.0.0.1:{port}", tmp / "pki" / "ca.crt", probe, loop)
    finally:

        async def stop() -> None:
            await probe.stop()
            await server.stop()
            await store.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def api_schema(served: Served) -> Any:
    """The document as the running API serves it (over HTTPS, with the token)."""
    return schemathesis.openapi.from_url(
        f"{served.url}/openapi/v3", headers=served.headers(), verify=str(served.ca)
    )


def _operations() -> list[str]:
    """Every operation's label, from the same app built in-process (for test ids)."""
    app = create_api_app(
        MemoryStore(), token=TOKEN, metrics=ControllerMetrics(), enqueue=lambda k, n: None,
        rack_name="rack-1",
    )  # fmt: skip
    labels = {
        r.ok().label for r in schemathesis.openapi.from_dict(app.openapi()).get_all_operations()
    }
    return sorted(labels)


def test_the_document_needs_the_token(served: Served) -> None:
    anonymous = requests.get(f"{served.url}/openapi/v3", verify=str(served.ca), timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["kind"] == "Status"


@pytest.mark.parametrize("label", _operations())
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_is_a_server_error(
    label: str, mode: GenerationMode, api_schema: Any, served: Served
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"the served document has no {label}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def call(case: Any) -> None:
        if case.query and str(case.query.get("watch")).lower() in ("true", "1"):
            case.query["watch"] = "false"  # a watch streams until the client leaves
        case.headers = {**(case.headers or {}), **served.headers()}  # authenticated: all of it
        response = case.call(base_url=served.url, verify=str(served.ca), timeout=30)
        case.validate_response(response, checks=[not_a_server_error])
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        if response.status_code >= 400:
            assert response.json()["kind"] == "Status", response.text

    seen: dict[int, int] = {}
    try:
        call()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no bad form
    if mode is GenerationMode.POSITIVE and "{name}" not in label and "events" not in label:
        assert any(code < 400 for code in seen), seen  # the token was taken: real work done


def test_no_request_blocked_the_loop(served: Served) -> None:
    """Runs after the fuzz above (same module): the probe saw every request it sent."""
    summary = served.probe.summary()
    assert summary["samples"] > 0
    assert max(served.probe.blocked) < MAX_BLOCKED, summary
