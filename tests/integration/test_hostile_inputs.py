"""Hostile bodies and queries to every endpoint a client reaches without credentials (issue 9,
item 5): the BMCs' and the RMC's Redfish login and service root, the controller's open pages
and its API before the token check, plus the API's body-reading routes with the token.

Whatever hypothesis sends (JSON nested 1,000 deep, megabyte bodies, ``Infinity`` and
``1e999``, 5,000-digit integers, YAML alias bombs, bytes that are not UTF-8): no 5xx, an
error in the listener's own shape, no state change from a refused request, and no request
holds the shared event loop for 100 ms, as a loop-lag probe beside the servers sees it.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from racklet.api import ObjectMeta, Rack, RackSpec
from racklet.controller import ControllerMetrics
from racklet.controller._http import create_api_app
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from racklet.store import SqliteStore
from tests.lag_probe import LagProbe
from tests.rmc import conftest as rmc
from tests.rmc.conftest import ADMIN, BMC_PASSWORD, free_port
from tests.rmc.conftest import Rack as RmcRack

rack = rmc.rack  # the same fixture: two BMCs on a twin and the RMC, each over TLS
TOKEN = "hostile-t0ken"
MAX_BLOCKED = 0.100


@dataclass
class Listeners:
    rmc: RmcRack
    api_url: str
    api_ca: Path
    store: SqliteStore
    probe: LagProbe


@pytest.fixture
async def listeners(rack: RmcRack, tmp_path: Path) -> AsyncIterator[Listeners]:
    ca = RackCA.create(tmp_path / "controller-pki")
    key, crt = ca.issue("racklet-controller").write(tmp_path, "api")
    store = SqliteStore(tmp_path / "store.db", history=20)
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=60)))
    app = create_api_app(
        store, token=TOKEN, metrics=ControllerMetrics(), enqueue=lambda k, n: None,
        rack_name="rack-1",
    )  # fmt: skip
    port = free_port()
    server = AppServer(app, port=port, ssl_context=server_context(crt, key), name="api")
    await server.start()
    # The servers share this process with pytest and hypothesis: a full garbage collection
    # walks their heap too (a tenth of a second late in a long session), which is not the
    # servers' doing. Frozen, the heap so far is left out of collections.
    gc.collect()
    gc.freeze()
    probe = LagProbe()
    probe.start()  # each example looks only at its own request's window (below)
    found = Listeners(
        rack, f"https://127.0.0.1:{port}", tmp_path / "controller-pki" / "ca.crt", store, probe
    )
    try:
        # A route's first request warms it up (lazy framework set-up, imports): not a
        # request that blocks the loop, so it happens before any example is measured.
        for which, method, path, authenticated in _TARGETS:
            async with _client(found, which, authenticated) as http:
                await http.request(method, path, content=b"{}" if method != "GET" else None)
        yield found
    finally:
        await probe.stop()
        await server.stop()
        await store.close()
        gc.unfreeze()


def _bomb(levels: int) -> bytes:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 10)}]" for n in range(1, levels)]
    return ("\n".join(lines) + "\n").encode()


def _nested(depth: int, opener: bytes) -> bytes:
    closer = b"]" if opener == b"[" else b"}"
    inner = b'{"a":' if opener == b"{" else b"["
    return inner * depth + b"1" + closer * depth


_HOSTILE = st.one_of(
    st.sampled_from([33, 1000, 100_000]).flatmap(
        lambda d: st.sampled_from([_nested(d, b"["), _nested(d, b"{")])
    ),
    st.sampled_from([70 * 1024, 1100 * 1024, 3 * 1024 * 1024]).map(
        lambda n: b'{"UserName": "' + b"x" * n + b'"}'
    ),
    st.sampled_from(["Infinity", "-Infinity", "NaN", "1e999", "9" * 5000]).flatmap(
        lambda v: st.sampled_from(
            [
                f'{{"UserName": "admin", "Password": {v}}}'.encode(),
                f'{{"spec": {{"psuRatedWatts": {v}}}}}'.encode(),
                f'{{"SessionTimeout": {v}}}'.encode(),
            ]
        )
    ),
    st.sampled_from([4, 7]).map(_bomb),
    st.sampled_from([b"\xff\xfe{", '{"a": "é"}'.encode("utf-16"), b"", b"{", b"[}"]),
    st.dictionaries(st.text(max_size=8), st.floats() | st.integers() | st.text(max_size=8)).map(
        lambda d: json.dumps(d).encode()  # json.dumps writes NaN and Infinity as such
    ),
)
_TYPES = st.sampled_from(["application/json", "application/yaml", "text/plain", ""])
_QUERIES = st.one_of(
    st.just(""),
    st.sampled_from(
        ["$top", "$skip", "resourceVersion", "watch", "labelSelector", "limit"]
    ).flatmap(
        lambda k: st.sampled_from(["9" * 5000, "-1", "Infinity", "%00", "a" * 10_000]).map(
            lambda v: f"?{k}={v}"
        )
    ),
)
# (listener, method, path, with credentials)
_TARGETS = [
    ("bmc", "POST", "/redfish/v1/SessionService/Sessions", False),
    ("bmc", "GET", "/redfish/v1", False),
    ("bmc", "PATCH", "/redfish/v1/AccountService/Accounts/admin", False),
    ("rmc", "POST", "/redfish/v1/SessionService/Sessions", False),
    ("rmc", "GET", "/redfish/v1", False),
    ("rmc", "POST", "/redfish/v1/Systems/unit-1_unit-1/Actions/ComputerSystem.Reset", False),
    ("api", "GET", "/metrics", False),
    ("api", "GET", "/ui/v1/units", False),
    ("api", "GET", "/openapi/v3", False),
    ("api", "POST", "/api/v1/racks", False),
    ("api", "PATCH", "/api/v1/racks/rack-1", False),
    ("api", "GET", "/api/v1/racks", True),
    ("api", "POST", "/api/v1/racks", True),
    ("api", "PATCH", "/api/v1/racks/rack-1", True),
    ("api", "PUT", "/api/v1/racks/rack-1", True),
    ("api", "POST", "/api/v1/events", True),
]


def _client(listeners: Listeners, which: str, authenticated: bool) -> httpx.AsyncClient:
    if which == "api":
        headers = {"Authorization": f"Bearer {TOKEN}"} if authenticated else {}
        verify = client_context(listeners.api_ca)
        return httpx.AsyncClient(base_url=listeners.api_url, verify=verify, headers=headers)
    rack_ = listeners.rmc
    base = rack_.url if which == "rmc" else rack_.bmc_urls["unit-1"]
    auth = (ADMIN if which == "rmc" else ("admin", BMC_PASSWORD)) if authenticated else None
    return httpx.AsyncClient(base_url=base, verify=client_context(rack_.ca), auth=auth)


async def _state(listeners: Listeners) -> dict[str, Any]:
    """What a refused request must not change: sessions, accounts, the store, unit power."""
    async with _client(listeners, "bmc", True) as bmc, _client(listeners, "rmc", True) as rmc_:
        bmc_sessions = (await bmc.get("/redfish/v1/SessionService/Sessions")).json()
        accounts = (await bmc.get("/redfish/v1/AccountService/Accounts")).json()
        rmc_sessions = (await rmc_.get("/redfish/v1/SessionService/Sessions")).json()
        power = (await bmc.get("/redfish/v1/Systems/unit-1")).json()["PowerState"]
    racks = [r.model_dump() for r in await listeners.store.list(Rack)]
    return {
        "bmc": bmc_sessions["Members"],
        "accounts": accounts["Members"],
        "rmc": rmc_sessions["Members"],
        "power": power,
        "racks": racks,
    }


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(target=st.sampled_from(_TARGETS), body=_HOSTILE, content_type=_TYPES, query=_QUERIES)
async def test_hostile_input_is_refused_cleanly_everywhere(
    listeners: Listeners, target: tuple[str, str, str, bool], body: bytes, content_type: str,
    query: str,
) -> None:  # fmt: skip
    which, method, path, authenticated = target
    before = await _state(listeners)
    probe = listeners.probe
    await asyncio.sleep(3 * probe.interval)  # the loop was idle between examples: not lag
    probe.reset()
    headers = {"Content-Type": content_type} if content_type else {}
    async with _client(listeners, which, authenticated) as http:
        response = await http.request(
            method, path + query, content=body if method != "GET" else None, headers=headers
        )
    await asyncio.sleep(3 * probe.interval)  # a sample that ends after the answer
    assert response.status_code < 500, (target, body[:200], response.text[:500])
    assert max(probe.blocked) < MAX_BLOCKED, (target, body[:100], probe.summary())
    if response.status_code >= 400:
        error = response.json()
        assert error.get("kind") == "Status" if which == "api" else "error" in error, error
        assert await _state(listeners) == before
