"""The agent's MicroVMs: run what the controller assigns, report them, obey the lease.

Assignments arrive in the reply to each heartbeat (``apply``); each names a VM, the attempt
the controller stands by, its image (a TUF target of ``vm-images``) and a lease. A new
assignment is fetched through ``fetch`` (TUF-verified bytes, or a ``RackletError`` naming why
not: then the VM is reported Failed and never started) and handed to the hypervisor. A VM
no longer assigned is stopped. A VM whose lease was not renewed in time (the controller
cannot be reached: a partition) is stopped too, before the controller may place it
elsewhere, so it never runs twice. Every task here is owned and cancelled by :meth:`close`.

Images ahead of time: the reply also names the images of VMs that would move here if their
unit were lost (``prefetch``); they are fetched through the same ``fetch`` in the background,
one at a time and not while a VM is starting, into the unit's :class:`ImageStore`. When
such a VM is then assigned here, ``fetch`` refreshes the TUF metadata and finds the bytes it
holds match the signed length and SHA-256, so only the download is skipped, never the check.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from racklet.config import make_dir, write_private
from racklet.errors import RackletError
from racklet.log import get_logger
from racklet.node._hypervisor import Hypervisor, VmRequest, VmState

Fetch = Callable[[str], Awaitable[bytes]]
ENDED_KEPT = 32
LOAD_WINDOW_SECONDS = 1.0
"""The VMs' CPU share is measured over windows this long (wall clock)."""
"""Ended VMs whose console the agent keeps (each at most ``CONSOLE_LINES`` lines)."""
log = get_logger("node.workloads")
MAX_PREFETCH = 4
"""Images held ready at most (the controller names no more)."""
PREFETCH_RETRY_SECONDS = 30.0
"""After a failed fetch ahead of time, wait this long (loop time) before the next try."""


class ImageStore:
    """VM images this unit fetched and TUF-verified, on its own storage, by SHA-256
    (``<dir>/<sha256>``, 0600), the newest ``keep`` kept. What it holds is only a candidate:
    the TUF fetch compares it with the freshly signed length and hash before it is used."""

    def __init__(self, directory: Path, keep: int = MAX_PREFETCH + 2) -> None:
        self._dir = directory
        self._keep = keep

    def held(self, sha256: str) -> bytes | None:
        """The bytes kept under ``sha256``, if any (blocking: call from a thread)."""
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            return None
        try:
            return (self._dir / sha256).read_bytes()
        except OSError:
            return None

    def keep(self, data: bytes) -> None:
        """Keep verified bytes, dropping the oldest beyond the limit (blocking)."""
        make_dir(self._dir)
        path = self._dir / hashlib.sha256(data).hexdigest()
        if not path.exists():
            write_private(path, data)
        path.touch()  # the newest, for the pruning below
        files = sorted(self._dir.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[self._keep :]:
            with contextlib.suppress(OSError):
                old.unlink()


class Workloads:
    def __init__(
        self,
        hypervisor: Hypervisor,
        fetch: Fetch,
        *,
        clock: Callable[[], float] | None = None,
        cores: int = 4,
        on_load: Callable[[float], None] | None = None,
        base_load: Callable[[], float] | None = None,
    ) -> None:
        self._cores = cores
        self._on_load = on_load
        self._base_load = base_load
        self._base = 0.0
        """The load the unit's OS had before its first VM (VMs add to it, and give it back)."""
        self._last_cpu: tuple[float, float] | None = None  # (wall time, CPU seconds)
        self._share: float | None = None
        self._hypervisor = hypervisor
        self._fetch = fetch
        self._fetching = asyncio.Lock()
        """One image fetch at a time: the VMs of a unit share one TUF metadata directory (two
        first fetches at once both tried to create its trusted root)."""
        self._clock = clock or asyncio.get_running_loop().time
        self._leases: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._failed: dict[str, VmState] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._ended: collections.OrderedDict[str, VmState] = collections.OrderedDict()
        """VMs no longer assigned here, newest last: their console stays readable."""
        self._held: set[str] = set()
        """Images fetched ahead of time (TUF target paths)."""
        self._retry_at: dict[str, float] = {}
        """Images whose fetch ahead of time failed: when (loop time) to try again."""
        self._prefetching: dict[str, asyncio.Task[None]] = {}
        self.report_due = asyncio.Event()
        """Set when a VM's phase changed (a start began, it runs, it ended, it failed to
        start): the heartbeat goes out now, not at its next interval, so the controller
        sees Starting and Running without waiting an interval for each."""
        hypervisor.on_phase = self.report_due.set

    def prefetch(self, targets: list[str]) -> None:
        """The controller's list of images to hold ready (from a heartbeat reply). Not while
        a VM of this unit is starting: its own fetch goes first (the next reply asks again)."""
        if self._starting:
            return
        now = self._clock()
        for target in targets[:MAX_PREFETCH]:
            if target in self._held or target in self._prefetching:
                continue
            if self._retry_at.get(target, now) > now:
                continue
            self._prefetching[target] = asyncio.create_task(
                self._prefetch(target), name=f"vm-prefetch:{target}"
            )

    async def _prefetch(self, target: str) -> None:
        try:
            async with self._fetching:
                await self._fetch(target)
            self._held.add(target)
            self._retry_at.pop(target, None)
            log.info("image %s fetched and verified ahead of time", target)
        except (RackletError, OSError) as exc:
            self._retry_at[target] = self._clock() + PREFETCH_RETRY_SECONDS
            log.warning("image %s not fetched ahead of time: %s", target, exc)
        finally:
            if self._prefetching.get(target) is asyncio.current_task():
                del self._prefetching[target]

    def apply(self, assignments: list[dict[str, Any]]) -> None:
        """The controller's current assignments for this unit (from a heartbeat reply)."""
        now = self._clock()
        wanted: dict[str, dict[str, Any]] = {}
        for item in assignments:
            try:
                name, attempt = str(item["name"]), int(item["attempt"])
                lease = float(item["leaseSeconds"])
            except (KeyError, TypeError, ValueError):
                log.warning("ignored a malformed VM assignment")
                continue
            wanted[name] = item
            self._leases[name] = now + lease
            if self._attempts.get(name) != attempt:
                self._attempts[name] = attempt
                self._begin(name, attempt, item)
        for name in list(self._attempts):
            if name not in wanted:
                self._drop(name, "no longer assigned to this unit")

    def _begin(self, name: str, attempt: int, item: dict[str, Any]) -> None:
        old = self._starting.pop(name, None)
        if old is not None:
            old.cancel()
        self._failed.pop(name, None)
        self._ended.pop(name, None)
        self._starting[name] = asyncio.create_task(
            self._start(name, attempt, item), name=f"vm-start:{name}"
        )
        self.report_due.set()  # reported Starting

    async def _start(self, name: str, attempt: int, item: dict[str, Any]) -> None:
        try:
            try:
                request = VmRequest(
                    name,
                    attempt,
                    vcpus=int(item["vcpus"]),
                    memory_mib=int(item["memoryMiB"]),
                    kernel_args=str(item.get("kernelArgs", "")),
                    user_data=str(item.get("userData", "")),
                )
                async with self._fetching:
                    image = await self._fetch(str(item["image"]))
            except (RackletError, KeyError, TypeError, ValueError) as exc:
                reason = f"image not started: {exc}"
                failed = VmState(name, attempt, phase="Failed", reason=reason)
                failed.add_line(f"racklet-agent: {reason}")
                self._failed[name] = failed
                self.report_due.set()
                log.warning("vm %s not started: %s", name, exc)
                return
            await self._hypervisor.start(request, image)
        finally:
            # a newer attempt may have replaced this task meanwhile: leave its entry alone
            if self._starting.get(name) is asyncio.current_task():
                del self._starting[name]

    def _drop(self, name: str, why: str) -> None:
        log.info("stopping vm %s: %s", name, why)
        self._attempts.pop(name, None)
        self._leases.pop(name, None)
        state = self.console_state(name)
        if state is not None:
            self._ended[name] = state
            self._ended.move_to_end(name)
            while len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)
        self._failed.pop(name, None)
        task = self._starting.pop(name, None)
        if task is not None:
            task.cancel()
        self._stopping.add(asyncio.create_task(self._hypervisor.remove(name)))

    def load(self) -> float | None:
        """The share of the unit's cores its VMs used (0..1) over the last whole window of
        :data:`LOAD_WINDOW_SECONDS`, from the QEMU processes' CPU time; None on the first
        call and until the first window closed. CPU time comes in clock ticks (10 ms): over
        a window of a second one tick is 1 % of a core, over the OS's 0.25 s poll it would
        be 4 %, and the unit's power would jitter by as much."""
        wall, used = time.monotonic(), self._hypervisor.cpu_seconds()
        last = self._last_cpu
        if last is None:
            self._last_cpu, self._share = (wall, used), None
            return None
        if wall - last[0] < LOAD_WINDOW_SECONDS:
            return self._share
        self._last_cpu = (wall, used)
        self._share = min(1.0, max(0.0, (used - last[1]) / (wall - last[0]) / self._cores))
        return self._share

    def _report_load(self) -> None:
        """Compute becomes watts: in the twin the VMs' CPU share, on top of what the OS
        itself kept busy before them, is the unit's load, which drives its power curve.
        Reported only while this agent runs VMs (and once more, the OS's own load again,
        when the last one ended), so a load set by other means is left alone otherwise."""
        if self._on_load is None:
            return
        busy = bool(self._hypervisor.vms)
        if busy and self._last_cpu is None and self._base_load is not None:
            self._base = self._base_load()
        share = self.load() if busy or self._last_cpu is not None else None
        if not busy:
            self._last_cpu = None
            if share is not None:
                self._on_load(self._base)
            return
        if share is not None:
            self._on_load(min(1.0, self._base + share))

    async def expire(self) -> None:
        """Stop every VM whose lease ran out, and report the VMs' load (the OS's poll)."""
        self._report_load()
        now = self._clock()
        for name, until in list(self._leases.items()):
            if until <= now:
                self._drop(name, "its lease expired (the controller is out of reach)")
        done = {t for t in self._stopping if t.done()}
        for task in done:
            with contextlib.suppress(Exception):
                await task
        self._stopping -= done

    def reports(self) -> list[dict[str, object]]:
        out = [
            vm.state.report() | {"cpuSeconds": round(vm.cpu_seconds(), 3)}
            for vm in self._hypervisor.vms.values()
        ]
        out += [state.report() for state in self._failed.values()]
        out += [
            {"name": name, "attempt": self._attempts.get(name, 0), "phase": "Starting"}
            for name in self._starting
            if name not in self._hypervisor.vms
        ]
        return out

    def console(self, name: str) -> list[str] | None:
        vm = self._hypervisor.vms.get(name)
        return list(vm.state.console) if vm is not None else None

    def console_state(self, name: str) -> VmState | None:
        """The newest attempt of VM ``name`` this unit knows, with its console: running, not
        started (the image failed), or ended and dropped (kept for ``racklet logs``)."""
        vm = self._hypervisor.vms.get(name)
        if vm is not None:
            return vm.state
        return self._failed.get(name) or self._ended.get(name)

    async def close(self) -> None:
        """Stop everything (a shutdown, a power cut): no QEMU outlives its unit's OS."""
        for task in [*self._starting.values(), *self._prefetching.values()]:
            task.cancel()
        tasks = [*self._starting.values(), *self._prefetching.values(), *self._stopping]
        self._starting.clear()
        self._prefetching.clear()
        self._stopping = set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._hypervisor.close()
