"""A MicroVM's console from the unit's agent to the controller, over the real listeners and
certificates: the controller reads it (pinned to the VM's unit), nobody else does, a
follower's long poll returns with the next line, what cannot be read says why, and a revoked
controller certificate stops reading as soon as the rack's CRL says so."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from racklet.api import MicroVM, MicroVMSpec, ObjectMeta, VmImageRef
from racklet.boot import TrustBundle, UnitIdentity, controller_identity, unit_live_server_context
from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRegistry
from racklet.controller._workloads import ConsoleUnavailable, VmConsoles
from racklet.net import AppServer, client_context
from racklet.node._console import console_route
from racklet.node._hypervisor import VmState
from racklet.node._metrics import create_agent_app
from racklet.pki import CRL_NAME, RackCA, revoke, write_crl
from racklet.store import MemoryStore


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.ca = RackCA.create(tmp_path / "pki")
        self.ca_path = tmp_path / "pki" / "ca.crt"
        self.pki = tmp_path / "pki"
        write_crl(self.ca, self.pki)  # the rack's CRL, empty until something is revoked
        unit = self.ca.issue("unit-1", role="unit/unit-1", client=True)
        key, crt = unit.write(tmp_path, "unit-1")
        self.unit_files = (crt, key)
        self.identity = UnitIdentity("unit-1", key_pem=key.read_text(), cert_pem=crt.read_text())
        ctl_key, ctl_crt = self.ca.issue(
            "racklet-controller", role="controller", client=True
        ).write(tmp_path, "client")
        self.controller_files = (ctl_crt, ctl_key)
        self.states: dict[str, VmState] = {}
        self.port = _free_port()
        self.store = MemoryStore()
        self.beats = HeartbeatRegistry()
        self.beats.record(
            HeartbeatBody(unit="unit-1", agent_url=f"https://127.0.0.1:{self.port}", os_version="1")
        )
        self.consoles = VmConsoles(self.store, self.beats, self.ca_path, ctl_crt, ctl_key)

    async def vm(self, name: str, unit: str | None, phase: str = "Running") -> None:
        vm = await self.store.create(
            MicroVM(
                metadata=ObjectMeta(name=name),
                spec=MicroVMSpec(image=VmImageRef(name="busybox", version="1.0.0")),
            )
        )
        vm.status.unit, vm.status.attempt, vm.status.phase = unit, 1, phase  # type: ignore[assignment]
        await self.store.update_status(vm)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path)
    trust = TrustBundle(
        boot_server="https://127.0.0.1:1", tuf_root=b"{}", ca_bundle_pem=rig.ca_path.read_text()
    )
    route = console_route(rig.states.get, controller_identity(rig.identity))
    with unit_live_server_context(rig.identity, trust, rig.pki / CRL_NAME) as context:
        server = AppServer(
            create_agent_app(CollectorRegistry(), [route]),
            port=rig.port,
            ssl_context=context,
            name="agent:unit-1",
        )
        await server.start()
        try:
            yield rig
        finally:
            await rig.consoles.aclose()
            await server.stop()


async def test_the_controller_reads_and_follows_a_vm_console(rig: Rig) -> None:
    state = VmState("hello", 1, phase="Running")
    for text in ("racklet-vm: init started", "hello from 6.1"):
        state.add_line(text)
    rig.states["hello"] = state
    await rig.vm("hello", "unit-1")
    reply = await rig.consoles.read("hello")
    assert reply["lines"] == ["racklet-vm: init started", "hello from 6.1"]
    assert (reply["unit"], reply["attempt"], reply["phase"], reply["next"]) == (
        "unit-1",
        1,
        "Running",
        2,
    )
    # a follower's long poll: it returns with the line the guest prints meanwhile
    follow = asyncio.create_task(rig.consoles.read("hello", skip=2, wait=10.0))
    await asyncio.sleep(0.2)
    state.add_line("racklet-vm: exit 0")
    state.phase = "Succeeded"
    reply = await follow
    assert (reply["lines"], reply["next"]) == (["racklet-vm: exit 0"], 3)
    # an ended VM: a long poll past its last line returns at once, empty
    reply = await rig.consoles.read("hello", skip=3, wait=10.0)
    assert (reply["lines"], reply["phase"]) == ([], "Succeeded")


async def test_only_the_controller_reads_and_only_from_the_vms_unit(rig: Rig) -> None:
    rig.states["hello"] = VmState("hello", 1)
    url = f"https://127.0.0.1:{rig.port}/vms/hello/console"
    crt, key = rig.unit_files  # another rack identity (a unit's own) is refused
    async with httpx.AsyncClient(verify=client_context(rig.ca_path, crt, key)) as other:
        response = await other.get(url)
        assert response.status_code == 403 and "controller" in response.json()["message"]
    async with httpx.AsyncClient(verify=client_context(rig.ca_path)) as anonymous:
        assert (await anonymous.get(url)).status_code == 403
        metrics = await anonymous.get(f"https://127.0.0.1:{rig.port}/metrics")
        assert metrics.status_code == 200  # a scrape needs no certificate
    ctl_crt, ctl_key = rig.controller_files
    async with httpx.AsyncClient(verify=client_context(rig.ca_path, ctl_crt, ctl_key)) as ctl:
        assert (await ctl.get(url, params={"wait": "99"})).status_code == 400
        assert (await ctl.get(url, params={"skip": "x"})).status_code == 400
    await rig.vm("pending", None, phase="Pending")
    with pytest.raises(ConsoleUnavailable, match="Pending and on no unit") as pending:
        await rig.consoles.read("pending")
    assert pending.value.code == 409
    # the VM says unit-2, whose heartbeat names this agent: unit-1's certificate does not pass
    rig.beats.record(
        HeartbeatBody(unit="unit-2", agent_url=f"https://127.0.0.1:{rig.port}", os_version="1")
    )
    await rig.vm("elsewhere", "unit-2")
    rig.states["elsewhere"] = VmState("elsewhere", 1)
    with pytest.raises(ConsoleUnavailable, match="agent of unit-2 does not answer") as pinned:
        await rig.consoles.read("elsewhere")
    assert pinned.value.code == 503 and "unit/unit-2" in str(pinned.value)
    await rig.vm("nowhere", "unit-1")  # assigned, its agent has not started it yet
    with pytest.raises(ConsoleUnavailable, match="no console on unit-1 yet"):
        await rig.consoles.read("nowhere")


async def test_a_revoked_controller_certificate_is_refused_without_restarting_the_agent(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("racklet.net._tls.FOLLOW_SECONDS", 0.0)  # look at every connection
    rig.states["hello"] = VmState("hello", 1)
    rig.states["hello"].add_line("secret from user data")
    base = f"https://127.0.0.1:{rig.port}"
    old = rig.controller_files
    new_key, new_crt = rig.ca.issue("racklet-controller", role="controller", client=True).write(
        tmp_path, "renewed"
    )

    async def get(path: str, files: tuple[Path, Path] | None = None) -> httpx.Response:
        # a fresh client each time: a new connection, hence a new handshake
        verify = client_context(rig.ca_path, *(files or (None, None)))
        async with httpx.AsyncClient(verify=verify) as client:
            return await client.get(base + path)

    assert (await get("/vms/hello/console", old)).json()["lines"] == ["secret from user data"]
    revoke(rig.ca, rig.pki, old[0].read_bytes())
    with pytest.raises(httpx.TransportError):  # the handshake fails: no console, not even a 403
        await get("/vms/hello/console", old)
    renewed = await get("/vms/hello/console", (new_crt, new_key))
    assert renewed.json()["lines"] == ["secret from user data"]
    metrics = await get("/metrics")  # a scrape without a certificate still passes
    assert metrics.status_code == 200
