"""Tokens on an HA rack: two controllers' APIs over one real etcd see the same tokens, and a
token revoked through one stops working on the other at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from racklet.api import ApiToken, BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.controller import ControllerMetrics
from racklet.controller._http import create_api_app
from racklet.controller._tokens import TokenKey
from racklet.store import EtcdStore
from tests.store.etcd_server import EtcdServer

ADMIN = "admin-token-of-racklet-yaml"


@pytest.fixture
async def two_apis(etcd: EtcdServer) -> AsyncIterator[tuple[list[httpx.AsyncClient], EtcdStore]]:
    prefix = f"/tokens-{uuid.uuid4().hex}/"
    stores = [EtcdStore(etcd.url, prefix=prefix) for _ in range(2)]
    await stores[0].create(
        ComputeUnit(
            metadata=ObjectMeta(name="unit-1"),
            spec=ComputeUnitSpec(slot=1, bmc=BmcRef(url="https://bmc.test")),
        )
    )
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(
                app=create_api_app(
                    store,
                    token=ADMIN,
                    metrics=ControllerMetrics(),
                    enqueue=lambda kind, name: None,
                    rack_name="rack-1",
                )
            ),
            base_url="https://controller.test",
        )
        for store in stores
    ]
    try:
        yield clients, stores[0]
    finally:
        for client in clients:
            await client.aclose()
        for store in stores:
            await store.close()


async def test_a_token_revoked_on_one_controller_fails_on_the_other_at_once(
    two_apis: tuple[list[httpx.AsyncClient], EtcdStore],
) -> None:
    (a, b), _ = two_apis
    admin = {"Authorization": f"Bearer {ADMIN}"}
    made = await a.post(
        "/api/v1/tokens",
        json={"name": "bob", "role": "operator", "units": ["unit-1"]},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    bob = {"Authorization": f"Bearer {made.json()['token']}"}
    patch = {"spec": {"power": "Off"}}
    assert (
        await b.patch("/api/v1/computeunits/unit-1", json=patch, headers=bob)
    ).status_code == 200
    listed = (await b.get("/api/v1/tokens", headers=admin)).json()["items"]
    assert [t["metadata"]["name"] for t in listed] == ["bob"]
    revoked = await a.delete("/api/v1/tokens/bob", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["kind"] == "Status"
    refused = await b.get("/api/v1/computeunits/unit-1", headers=bob)
    assert refused.status_code == 401 and refused.json()["kind"] == "Status"


async def test_the_store_keeps_only_the_hash(
    two_apis: tuple[list[httpx.AsyncClient], EtcdStore],
) -> None:
    (a, _), store = two_apis
    made = await a.post(
        "/api/v1/tokens", json={"role": "viewer"}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert made.status_code == 201, made.text
    name, secret = made.json()["token"].removeprefix("rkt_").split(".", 1)
    assert name == made.json()["metadata"]["name"]
    assert "secretHmac" not in made.json()["spec"]
    stored = await store.get(ApiToken, name)
    assert stored.spec.secret_hmac == TokenKey(ADMIN).digest(secret)
    assert secret not in stored.model_dump_json()


async def test_a_new_admin_token_voids_every_api_token(
    two_apis: tuple[list[httpx.AsyncClient], EtcdStore],
) -> None:
    """What a factory reset does: the store survives, racklet.yaml's token is new."""
    (a, _), store = two_apis
    admin = {"Authorization": f"Bearer {ADMIN}"}
    made = await a.post("/api/v1/tokens", json={"name": "old", "role": "admin"}, headers=admin)
    old = {"Authorization": f"Bearer {made.json()['token']}"}
    assert (await a.get("/api/v1/computeunits", headers=old)).status_code == 200
    after_reset = create_api_app(
        store,
        token="a-new-admin-token",
        metrics=ControllerMetrics(),
        enqueue=lambda kind, name: None,
        rack_name="rack-1",
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=after_reset), base_url="https://controller.test"
    ) as c:
        assert (await c.get("/api/v1/computeunits", headers=old)).status_code == 401
        new_admin = {"Authorization": "Bearer a-new-admin-token"}
        listed = (await c.get("/api/v1/tokens", headers=new_admin)).json()["items"]
        assert [(t["metadata"]["name"], t["status"]["state"]) for t in listed] == [("old", "void")]
