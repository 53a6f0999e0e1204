"""The MicroVM side of a heartbeat: take the unit's VM reports, answer with its assignments;
and a VM's console, read from the agent of the unit it runs on (:class:`VmConsoles`).

The channel is the heartbeat the agent already sends over mutual TLS (its certificate names
the unit, checked by the handler): the body carries what the agent's VMs are doing, the
reply the VMs assigned to that unit, each with its lease. A report counts only for the
attempt the controller assigned to that unit (a late report of a moved VM is stale and
dropped), so a VM's status always describes the one placement the controller stands by.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx

from racklet.api import TERMINAL_VM_PHASES, MicroVM, utcnow
from racklet.controller._heartbeats import HeartbeatRegistry, VmReport
from racklet.controller.errors import ControllerError
from racklet.controller.reconcilers._microvms import LEASE_SECONDS
from racklet.limits import InputRejected, parse_json
from racklet.log import get_logger
from racklet.net import ca_trust_domain, client_context, spiffe_id
from racklet.store import Conflict, Fenced, NotFound, Store

VM_CHANNEL = "vm-images"
IMAGE_FILE = "image.tar"
AGENT_PHASES = frozenset({"Starting", "Running", "Succeeded", "Failed"})
LEASE_MARGIN_SECONDS = 2.0
"""How much earlier than the controller's lease the agent's runs out (covers the reply's
trip and the agent's poll)."""
MAX_CONSOLE_WAIT_SECONDS = 10.0
"""The longest long poll the controller holds open on an agent (and a client on it)."""
CONSOLE_REPLY_BYTES = 16 * 1024 * 1024
BEAT_NOW_PATH = "/heartbeat"
"""The agent's route that makes it heartbeat at once (``racklet.node``'s ``beat_now_route``)."""

log = get_logger("controller")


def image_target(vm: MicroVM) -> str:
    return f"{VM_CHANNEL}/{vm.spec.image.name}/{vm.spec.image.version}/{IMAGE_FILE}"


def lease_seconds(vm: MicroVM) -> float:
    """What the agent may count on: the lease the controller holds, less a margin, so the
    agent's deadline (from when the reply reaches it) passes before the controller's does
    and the VM is stopped on the old unit before it can be placed on another."""
    if vm.status.lease_until is None:
        return 0.0
    left = (vm.status.lease_until - utcnow()).total_seconds()
    return max(0.0, min(LEASE_SECONDS, left) - LEASE_MARGIN_SECONDS)


def assignment(vm: MicroVM) -> dict[str, Any]:
    return {
        "name": vm.metadata.name,
        "attempt": vm.status.attempt,
        "image": image_target(vm),
        "vcpus": vm.spec.vcpus,
        "memoryMiB": vm.spec.memory_mi_b,
        "kernelArgs": vm.spec.kernel_args,
        "userData": vm.spec.user_data,
        "leaseSeconds": round(lease_seconds(vm), 3),
    }


async def exchange(
    store: Store,
    unit: str,
    reports: list[VmReport],
    agent_url: str,
    *,
    written: set[str] | None = None,
    vms: list[MicroVM] | None = None,
) -> list[dict[str, Any]]:
    """Apply ``unit``'s reports to its VMs' status; return what it should run. ``written``
    gets the names of the VMs whose status a report changed (their reconciler is woken: a
    report that changes nothing, most of them, wakes nothing). ``vms``: every MicroVM, just
    listed (None: listed here); what this writes is answered as written, and a VM whose
    write lost to another writer (the reconciler moved it) is read again."""
    every = await store.list(MicroVM) if vms is None else vms
    current = [v for v in every if v.status.unit == unit]
    by_name = {r.name: r for r in reports}
    for index, vm in enumerate(current):
        report = by_name.get(vm.metadata.name)
        if report is None or report.attempt != vm.status.attempt:
            continue
        if report.phase not in AGENT_PHASES or vm.status.phase in TERMINAL_VM_PHASES:
            continue
        status = vm.status.model_copy(deep=True)
        status.phase = report.phase  # type: ignore[assignment]
        status.exit_code, status.reason = report.exit_code, report.reason
        status.cpu_seconds = report.cpu_seconds
        status.console_url = f"{agent_url}/vms/{vm.metadata.name}/console"
        if report.phase == "Running" and status.started_time is None:
            status.started_time = utcnow()
        if report.phase in TERMINAL_VM_PHASES:
            status.finished_time = utcnow()
        if status != vm.status:
            changed = vm.model_copy(update={"status": status})
            # On a conflict the reconciler moved it meanwhile; a follower of an HA rack may
            # not write (Fenced): the leader gets the same report. Either way it comes again.
            try:
                current[index] = await store.update_status(changed)
            except Fenced:
                continue
            except Conflict:
                with contextlib.suppress(NotFound):  # gone: nothing to run
                    current[index] = await store.get(MicroVM, vm.metadata.name)
                continue
            if written is not None:
                written.add(vm.metadata.name)
    return [
        assignment(v)
        for v in current
        if v.status.unit == unit and v.status.phase not in TERMINAL_VM_PHASES
    ]


MAX_STANDBY_IMAGES = 4
"""Images a unit is asked to hold ready, at most (each is a VM image of some megabytes)."""
MOVABLE = frozenset({"Always", "OnFailure"})


async def standby_images(store: Store, unit: str, *, vms: list[MicroVM] | None = None) -> list[str]:
    """The images ``unit`` should fetch and verify ahead of time: those of the VMs that would
    move if their unit were lost (``Always``, ``OnFailure``) and run elsewhere, or wait for a
    place. A unit that takes one over then starts it without downloading it (the agent still
    checks the bytes it holds against freshly refreshed TUF metadata before QEMU starts).
    ``vms``: every MicroVM, just listed (None: listed here)."""
    wanted: list[str] = []
    for vm in await store.list(MicroVM) if vms is None else vms:
        if vm.spec.restart_policy not in MOVABLE or vm.status.phase in TERMINAL_VM_PHASES:
            continue
        target = image_target(vm)
        if vm.status.unit != unit and target not in wanted:
            wanted.append(target)
    return sorted(wanted)[:MAX_STANDBY_IMAGES]


class ConsoleUnavailable(ControllerError):
    """The VM's console cannot be read now; ``code`` is the HTTP status to answer with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class VmConsoles:
    """Reads MicroVM consoles from the units' agents, as the controller (its client
    certificate; the agent serves consoles to nobody else), each connection pinned to the
    unit the VM is assigned to (``spiffe://<rack>/unit/<unit>``): the agent's address comes
    from the unit's own heartbeat, and no other rack identity can answer for it.

    Through the same clients, :meth:`beat_now` asks an agent for a heartbeat at once when
    its unit was assigned a VM, so the assignment reaches it in that reply rather than one
    heartbeat interval later. One short request per assignment, nothing held open between
    (at 10,000 units a long poll would hold 10,000 connections); a unit that does not
    answer gets the assignment at its next heartbeat as before."""

    def __init__(
        self,
        store: Store,
        heartbeats: HeartbeatRegistry,
        ca: Path,
        cert: Path,
        key: Path,
        *,
        crl: Path | None = None,
    ):
        self._store = store
        self._heartbeats = heartbeats
        self._tls = (ca, cert, key)
        self._crl = crl  # a unit whose certificate is revoked (a replaced board) is refused
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._nudging: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    def beat_now(self, unit: str) -> None:
        """Ask ``unit``'s agent for a heartbeat now, in the background (one request in
        flight per unit; one asked for meanwhile is sent after it)."""
        if unit in self._nudging:
            self._again.add(unit)
            return
        self._nudging[unit] = asyncio.create_task(self._nudge(unit), name=f"beat-now:{unit}")

    async def _nudge(self, unit: str) -> None:
        try:
            while True:
                self._again.discard(unit)
                beat = self._heartbeats.latest(unit)
                if beat is None:
                    return  # no agent known: its first heartbeat gets the assignment
                url = f"{beat.body.agent_url.rstrip('/')}{BEAT_NOW_PATH}"
                try:
                    response = await self._client(unit).post(url)
                except (httpx.HTTPError, OSError, ValueError) as exc:
                    log.info("%s: no early heartbeat: %s", unit, exc, extra={"unit": unit})
                else:
                    if response.status_code != 202:
                        log.info(
                            "%s: no early heartbeat: HTTP %d",
                            unit,
                            response.status_code,
                            extra={"unit": unit},
                        )
                if unit not in self._again:
                    return
        finally:
            if self._nudging.get(unit) is asyncio.current_task():
                del self._nudging[unit]

    def _client(self, unit: str) -> httpx.AsyncClient:
        client = self._clients.get(unit)
        if client is None:
            ca, cert, key = self._tls
            expect = spiffe_id(ca_trust_domain(ca.read_bytes()), "unit", unit)
            client = httpx.AsyncClient(
                verify=client_context(ca, cert, key, expect=expect, follow=True, crl=self._crl),
                timeout=httpx.Timeout(5.0, read=MAX_CONSOLE_WAIT_SECONDS + 5.0),
            )
            self._clients[unit] = client
        return client

    async def read(self, name: str, skip: int = 0, wait: float = 0.0) -> dict[str, Any]:
        """The console of VM ``name`` from line ``skip`` on (see ``racklet.node._console``),
        waiting up to ``wait`` seconds for a new line; ``unit`` added."""
        vm = await self._store.get(MicroVM, name)  # NotFound: a 404
        unit = vm.status.unit
        if unit is None:
            raise ConsoleUnavailable(
                f"microvm {name!r} is {vm.status.phase} and on no unit: no console yet", 409
            )
        beat = self._heartbeats.latest(unit)
        if beat is None:
            raise ConsoleUnavailable(f"{unit} has sent no heartbeat: its agent is unknown", 503)
        url = f"{beat.body.agent_url.rstrip('/')}/vms/{name}/console"
        params = {
            "skip": str(max(0, skip)),
            "wait": f"{min(max(0.0, wait), MAX_CONSOLE_WAIT_SECONDS):g}",
        }
        try:
            response = await self._client(unit).get(url, params=params)
        except (httpx.HTTPError, OSError, ValueError) as exc:
            raise ConsoleUnavailable(f"the agent of {unit} does not answer: {exc!r}", 503) from exc
        if response.status_code == 404:
            raise ConsoleUnavailable(
                f"microvm {name!r} has no console on {unit} yet ({vm.status.phase})", 409
            )
        if response.status_code != 200:
            raise ConsoleUnavailable(
                f"the agent of {unit} refused the console: HTTP {response.status_code}", 503
            )
        try:
            body = parse_json(response.content, max_bytes=CONSOLE_REPLY_BYTES)
            lines = [str(line) for line in body["lines"]]
            reply = {
                "name": name,
                "unit": unit,
                "attempt": int(body["attempt"]),
                "phase": str(body["phase"]),
                "exitCode": body.get("exitCode"),
                "lines": lines,
                "next": int(body["next"]),
            }
        except (InputRejected, ValueError, KeyError, TypeError) as exc:
            raise ConsoleUnavailable(f"the agent of {unit} sent a bad console: {exc}", 503) from exc
        return reply

    async def aclose(self) -> None:
        nudges, self._nudging = list(self._nudging.values()), {}
        for task in nudges:
            task.cancel()
        await asyncio.gather(*nudges, return_exceptions=True)
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
