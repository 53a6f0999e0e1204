"""A real rack for the chaos test: the twin's process ``run`` in a thread, the controller as
its own process, and probes on the twin that record ground truth.

The hardware side is ``racklet.hardware_side``'s own ``run`` (the twin, one BMC per unit, the
RMC, the relaying switch, the fault engine behind its control endpoint) on an event loop of
its own in a thread, so the test holds the running ``TwinRack``; the management side is the
real controller process. The test talks to the rack only as a user does (the API, the
control endpoint, the BMCs' Redfish and metrics); what it reads from the twin is ground
truth no API reports: the payload bytes each unit booted and the busbar's own record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from racklet.cli._prepare import prepare
from racklet.config import RackConfig
from racklet.controller._hardware import HardwareControl
from racklet.hardware_side._process import run
from racklet.net import client_context
from racklet.twin._rack import TwinRack
from racklet.twin._unit import TwinUnit

T = TypeVar("T")
_BOOTING = re.compile(r"^bootstrap: booting (\S+) (\S+) \(slot ([AB])\)$")


@dataclass(frozen=True)
class BootRecord:
    """One OS boot as the twin saw it: the console line and the SHA-256 of the bytes that
    were in the booted slot at that instant."""

    unit: str
    line: str
    version: str
    slot: str
    sha256: str


class Twin:
    """The hardware side's ``run`` on its own loop in a thread; :meth:`call` runs code there."""

    def __init__(self, config: RackConfig) -> None:
        self.config = config
        self.boots: list[BootRecord] = []
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready: Future[TwinRack] = Future()
        self._thread = threading.Thread(target=self._main, name="chaos-twin", daemon=True)
        self.rack: TwinRack

    def start(self, timeout: float = 60.0) -> None:
        self._thread.start()
        self.rack = self._ready.result(timeout)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to the test through start()
            if not self._ready.done():
                self._ready.set_exception(exc)
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()

        def ready(rack: TwinRack) -> None:
            for unit in rack.units.values():
                self._probe(unit)
            self._ready.set_result(rack)

        await run(self.config, self._stop, ready=ready)

    def _probe(self, unit: TwinUnit) -> None:
        """Record every OS boot of ``unit`` from its UART, with the booted slot's bytes' hash
        read at that instant (the bootstrap has handed over: what is there is what runs)."""
        write = unit.console

        def console(line: str) -> None:
            match = _BOOTING.match(line)
            if match is not None and unit.powered:
                payload = unit.storage / "slots" / match.group(3) / "payload.bin"
                digest = hashlib.sha256(payload.read_bytes()).hexdigest()
                self.boots.append(
                    BootRecord(unit.name, line, match.group(2), match.group(3), digest)
                )
            write(line)

        unit.console = console  # type: ignore[method-assign]

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """``fn()`` on the twin's loop (its objects are that loop's), and its result."""

        async def wrapped() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def run_coroutine(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


class ChaosRack:
    """A small rack, its twin, its controller process and an API client."""

    def __init__(self, state_dir: Path, units: int, speed: float, psu_watts: float) -> None:
        self.config = prepare(
            state_dir,
            units=units,
            speed=speed,
            profile="raspberry-pi-4",
            psu_rated_watts=psu_watts,
            payload_bytes=65536,
        )
        self.names = [f"unit-{n}" for n in range(1, units + 1)]
        self.twin = Twin(self.config)
        self.controller: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(
            base_url=self.config.api.url,
            verify=client_context(self.config.layout.ca_cert),
            headers={"Authorization": f"Bearer {self.config.api.token}"},
            timeout=15,
        )

    def start(self) -> None:
        self.twin.start()  # the probes are on before any unit is powered on
        log = (self.config.layout.logs / "controller.log").open("ab")
        with log:
            self.controller = subprocess.Popen(
                [sys.executable, "-m", "racklet.controller", "--state-dir",
                 str(self.config.state_dir)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def close(self) -> None:
        self.api.close()
        if self.controller is not None:
            self.controller.terminate()
            try:
                self.controller.wait(30)
            except subprocess.TimeoutExpired:
                self.controller.kill()
                self.controller.wait()
        self.twin.close()

    # -- the API, as a user reaches it ------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call, retried while the controller is not answering (it may restart)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return self.api.request(method, path, **kwargs)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def phases(self) -> dict[str, str]:
        response = self.request("GET", "/api/v1/computeunits")
        response.raise_for_status()
        return {
            item["metadata"]["name"]: (item.get("status") or {}).get("phase", "")
            for item in response.json()["items"]
        }

    def get(self, plural: str, name: str) -> dict[str, Any]:
        response = self.request("GET", f"/api/v1/{plural}/{name}")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def until(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                tail = (self.config.layout.logs / "controller.log").read_text()[-3000:]
                raise AssertionError(
                    f"timed out after {timeout:g} s waiting for {what}; phases "
                    f"{self.phases()}\ncontroller log:\n{tail}"
                )
            time.sleep(0.2)

    def control(self, action: Callable[[HardwareControl], Awaitable[T]]) -> T:
        """A call to the hardware side's control endpoint with the controller's identity, as
        ``racklet slot`` makes it."""

        async def call() -> T:
            control = HardwareControl.for_state_dir(
                self.config.control.url if self.config.control else "", self.config.layout.root
            )
            try:
                return await action(control)
            finally:
                await control.aclose()

        return asyncio.run(call())

    # -- what the BMCs report ----------------------------------------------------------------

    def energy_counters(self) -> dict[str, float]:
        """Each answering BMC's ``racklet_unit_energy_joules_total`` (a BMC that does not
        answer now, because a fault hangs or unpowers it, is left out)."""
        verify = client_context(self.config.layout.ca_cert)
        counters: dict[str, float] = {}
        with httpx.Client(verify=verify, timeout=3) as client:
            for unit in self.config.units:
                try:
                    text = client.get(
                        f"{unit.bmc.url}/metrics", auth=(unit.bmc.username, unit.bmc.password)
                    ).text
                except httpx.HTTPError:
                    continue
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        if sample.name == "racklet_unit_energy_joules_total":
                            counters[unit.name] = sample.value
        return counters

    def signed_payloads(self) -> set[str]:
        """The SHA-256 of every ``payload.bin`` the rack's TUF repository signed."""
        digests: set[str] = set()
        for path in (self.config.layout.boot / "repo" / "metadata").glob("*.json"):
            signed = json.loads(path.read_text()).get("signed", {})
            for name, target in (signed.get("targets") or {}).items():
                if name.endswith("payload.bin"):
                    digests.add(target["hashes"]["sha256"])
        return digests
