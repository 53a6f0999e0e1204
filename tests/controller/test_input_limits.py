"""Small hostile inputs to the controller's API: each is a clear 4xx Status, never a 5xx or a
stalled event loop, and a refused write leaves the stored object as it was (issue 9, item 5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tests.controller import test_resources_http
from tests.controller.test_resources_http import SOURCES, Api, source

api = test_resources_http.api  # the same fixture: a real API over HTTPS, on each store

RACKS = "/api/v1/racks"
YAML = {"Content-Type": "application/yaml"}
MERGE = {"Content-Type": "application/merge-patch+json"}


def _alias_bomb(levels: int) -> str:
    """A few hundred bytes of YAML whose aliases expand to 10**levels leaves."""
    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x","x"]']
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 10)}]")
    return "metadata:\n  labels:\n    " + "\n    ".join(lines) + "\n"


async def _stored(api: Api, name: str) -> dict[str, Any]:
    answer = await api.http.get(f"{SOURCES}/{name}")
    assert answer.status_code == 200
    return dict(answer.json())


async def test_a_yaml_alias_bomb_is_refused_before_it_is_expanded(api: Api) -> None:
    assert (await api.http.post(SOURCES, json=source("main"))).status_code == 201
    before = await _stored(api, "main")
    bomb = _alias_bomb(6)  # a million leaves once walked; the 703 bytes gave 10**7
    assert len(bomb) < 1024
    answer = await api.http.patch(f"{SOURCES}/main", content=bomb, headers=YAML)
    assert answer.status_code == 400, answer.text
    assert answer.json()["kind"] == "Status" and "aliases" in answer.json()["message"]
    assert await _stored(api, "main") == before
    plain = "metadata:\n  labels: {team: a}\n"  # YAML without aliases still works
    assert (await api.http.patch(f"{SOURCES}/main", content=plain, headers=YAML)).is_success


async def test_deep_json_is_a_400_not_a_recursion_error(api: Api) -> None:
    assert (await api.http.post(SOURCES, json=source("main"))).status_code == 201
    before = await _stored(api, "main")
    deep = b'{"metadata": {"labels": ' + b"[" * 1000 + b"]" * 1000 + b"}}"
    for answer in (
        await api.http.patch(f"{SOURCES}/main", content=deep, headers=MERGE),
        await api.http.post(SOURCES, content=deep),
        await api.http.put(f"{SOURCES}/main", content=deep),
        await api.http.post("/api/v1/events", content=deep),
    ):
        assert answer.status_code == 400, answer.text
        assert answer.json()["reason"] == "BadRequest"
        assert "nested deeper than" in answer.json()["message"]
    assert await _stored(api, "main") == before


async def test_non_finite_numbers_are_invalid(api: Api) -> None:
    rack = {"kind": "Rack", "metadata": {"name": "rack-1"}, "spec": {"psuRatedWatts": 60}}
    assert (await api.http.post(RACKS, json=rack)).status_code == 201
    for body, headers in (
        (b'{"spec": {"psuRatedWatts": Infinity}}', MERGE),
        (b'{"spec": {"psuRatedWatts": NaN}}', MERGE),
        (b'{"spec": {"psuRatedWatts": 1e999}}', MERGE),
        (b"spec:\n  psuRatedWatts: .inf\n", YAML),
        (b"spec:\n  psuRatedWatts: -.Inf\n", YAML),
    ):
        answer = await api.http.patch(f"{RACKS}/rack-1", content=body, headers=headers)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["reason"] == "Invalid" and "finite" in answer.json()["message"]
    created = await api.http.post(
        RACKS,
        content=b"kind: Rack\nmetadata: {name: rack-2}\nspec: {psuRatedWatts: .nan}\n",
        headers=YAML,
    )
    assert created.status_code == 422
    rack_1 = (await api.http.get(f"{RACKS}/rack-1")).json()
    assert rack_1["spec"]["psuRatedWatts"] == 60
    assert (await api.http.get(f"{RACKS}/rack-2")).status_code == 404


async def test_a_resource_version_is_a_bounded_integer(api: Api) -> None:
    for version in ("9" * 5000, str(2**63), "١٢", "-1", "1e3"):
        for query in ({"watch": "true", "resourceVersion": version}, {"resourceVersion": version}):
            answer = await api.http.get(SOURCES, params=query)
            assert answer.status_code == 400, (version, answer.text)
            assert "resourceVersion" in answer.json()["message"]
            assert len(answer.text) < 1024  # names the culprit without echoing 5,000 digits


async def test_a_body_is_refused_as_it_grows_past_the_limit(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to check first
        for _ in range(40):
            yield b" " * 64 * 1024

    answer = await api.http.post(SOURCES, content=chunks())
    assert answer.status_code == 413 and answer.json()["reason"] == "RequestEntityTooLarge"
    yaml_body = b"kind: GitSource\n" + b"# padding\n" * 30_000  # 300 kB: over the YAML bound
    answer = await api.http.post(SOURCES, content=yaml_body, headers=YAML)
    assert answer.status_code == 413
    yaml_types = await api.http.post(
        SOURCES,
        content=b"kind: GitSource\nmetadata: {name: x, labels: {when: 2024-01-01}}\n"
        b"spec: {localPath: /srv/r.git}\n",
        headers=YAML,
    )
    assert yaml_types.status_code == 201  # a YAML date stays the string it was written as
    assert yaml_types.json()["metadata"]["labels"] == {"when": "2024-01-01"}


async def test_yaml_bodies_read_booleans_as_gitops_manifests_do(api: Api) -> None:
    manifest = (
        b"kind: ComputeUnit\nmetadata: {name: unit-3}\n"
        b"spec: {slot: 3, power: Off, bmc: {url: 'https://127.0.0.1:9'}}\n"
    )
    created = await api.http.post("/api/v1/computeunits", content=manifest, headers=YAML)
    assert created.status_code == 201, created.text  # YAML 1.1 would read Off as false
    assert created.json()["spec"]["power"] == "Off"
