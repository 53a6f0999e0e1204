"""schemathesis over the controller's API, from the OpenAPI document the API serves.

A real API (SQLite store, TLS, bearer token) runs on 127.0.0.1 in a process of its own with a
loop-lag probe beside it (``tests/controller/api_process.py``); schemathesis loads
``/openapi/v3`` over HTTPS and sends every operation generated requests, valid and not,
authenticated. Whatever it sends: never a 5xx,
every error a Kubernetes ``Status``, and no request blocks the event loop for 100 ms.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from racklet.controller import ControllerMetrics
from racklet.controller._http import create_api_app
from racklet.store import MemoryStore
from tests.controller.api_process import TOKEN, ApiProcess

MAX_BLOCKED = 0.100
EXAMPLES = 8
SENT: list[tuple[float, float, str]] = []
"""Every request the fuzz sent: (start, end, what), to name the one that blocked the loop."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """The API in a process of its own, so the fuzzing client's work is not charged to it."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    api = ApiProcess(tmp_path_factory.mktemp("fuzz"), port)
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def api_schema(served: ApiProcess) -> Any:
    """The document as the running API serves it (over HTTPS, with the token).

    After the server's first requests: their one-off warm-up (FastAPI's lazy set-up, the
    first TLS session, imports) is not a request blocking the loop, so the probe's record
    used below starts after it.
    """
    loaded = schemathesis.openapi.from_url(
        f"{served.url}/openapi/v3", headers=served.headers(), verify=str(served.ca)
    )
    served.record()
    return loaded


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


def test_the_document_needs_the_token(served: ApiProcess) -> None:
    anonymous = requests.get(f"{served.url}/openapi/v3", verify=str(served.ca), timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["kind"] == "Status"


@pytest.mark.parametrize("label", _operations())
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_is_a_server_error(
    label: str, mode: GenerationMode, api_schema: Any, served: ApiProcess
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
        started = time.perf_counter()
        response = case.call(base_url=served.url, verify=str(served.ca), timeout=30)
        SENT.append((started, time.perf_counter(), f"{label} {mode.value} {case.body!r:.200}"))
        case.validate_response(response, checks=[not_a_server_error])
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        if response.status_code >= 400:
            assert response.json()["kind"] == "Status", response.text

    seen: dict[int, int] = {}
    try:
        call()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no bad form
    # Real work done (the token was taken) where the fuzzed API can do it: not for a named
    # object it never made, nor for the slots, which need a hardware side it has not (404).
    hardware = "/api/v1/slots" in label
    if mode is GenerationMode.POSITIVE and "{name}" not in label and "events" not in label:
        assert any(code < 400 for code in seen) or (hardware and set(seen) == {404}), seen


def test_no_request_blocked_the_loop(served: ApiProcess) -> None:
    """Runs after the fuzz above (same module): the probe saw every request it sent."""
    record = served.record()
    assert record["summary"]["samples"] > 0
    blocked, slept, woke = record["worst"]
    culprits = [what for start, end, what in SENT if start < woke and end > slept]
    assert blocked < MAX_BLOCKED, (record["summary"], culprits)
