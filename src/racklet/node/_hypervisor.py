"""The unit's hypervisor: one QEMU process per microVM, owned by the OS agent.

A VM is started only from an image TUF already verified (the caller hands over its bytes;
this module parses them and never fetches anything). QEMU runs as an asyncio subprocess, so
nothing blocks the event loop; its serial console (stdout) is read line by line into a
bounded buffer, the state follows what the guest prints (``Starting`` until its init
announces itself, ``Running``, then ``Succeeded``/``Failed`` by the exit code its init prints
before powering off). Stopping is SIGTERM (QEMU ends the guest), then SIGKILL after a grace
period; :meth:`Hypervisor.close` stops every VM, which the OS does on shutdown and a power
cut (its task is cancelled). What is not here: ACPI power-down through QMP, disks, networks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from racklet.config import make_dir, write_private
from racklet.log import get_logger
from racklet.tasks import OwnedTask
from racklet.vm import (
    EXIT_MARKER,
    HypervisorError,
    ImageError,
    accelerator,
    die_with_parent,
    disable_kvm,
    find_qemu,
    qemu_command,
    read_image,
    user_data_archive,
)

CONSOLE_LINES = 2000
MAX_LINE_CHARS = 2048
"""A console line is cut here: the buffer's size stays bounded whatever the guest prints."""
STOP_GRACE_SECONDS = 5.0
INIT_MARKER = "racklet-vm: init started"
BOOT_SECONDS = {"kvm": 15.0, "tcg": 300.0}
"""How long a guest may take to reach its init: KVM boots in about a second, so a guest
silent for 15 s means KVM does not work here; TCG takes 3 s on an idle core and over a
minute on a host whose cores are shared by many busy processes."""
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

log = get_logger("node.vms")


@dataclass(frozen=True)
class VmRequest:
    """What the agent was asked to run: one attempt of one MicroVM."""

    name: str
    attempt: int
    vcpus: int
    memory_mib: int
    kernel_args: str = ""
    user_data: str = ""


@dataclass
class VmState:
    """What the agent reports about a VM (it is what the controller's status is made from)."""

    name: str
    attempt: int
    phase: str = "Starting"
    exit_code: int | None = None
    reason: str = ""
    console: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=CONSOLE_LINES)
    )
    lines_total: int = 0
    """Console lines printed so far (the deque keeps the last ``CONSOLE_LINES``): a reader's
    position, which stays right when old lines fall out of the buffer."""
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def add_line(self, text: str) -> None:
        self.console.append(text)
        self.lines_total += 1
        self.changed()

    def changed(self) -> None:
        """Wake every reader waiting in :meth:`wait_past` (a new line, a new phase)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def lines_from(self, skip: int, most: int = CONSOLE_LINES) -> tuple[int, list[str]]:
        """Up to ``most`` console lines from line ``skip`` on, and the number of the first
        (later than ``skip`` when older lines fell out of the buffer)."""
        first = self.lines_total - len(self.console)
        start = max(skip, first)
        return start, list(itertools.islice(self.console, start - first, start - first + most))

    async def wait_past(self, skip: int, seconds: float) -> None:
        """Return once there is a line after ``skip`` or the VM ended, at most ``seconds``
        seconds later (a follower's long poll)."""
        if self.lines_total > skip or self.phase in ("Succeeded", "Failed") or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._changed.wait()

    def report(self) -> dict[str, object]:
        return {
            "name": self.name,
            "attempt": self.attempt,
            "phase": self.phase,
            "exitCode": self.exit_code,
            "reason": self.reason,
        }


class Vm:
    """One QEMU process and the directory holding its kernel and initrd."""

    def __init__(
        self, request: VmRequest, workdir: Path, on_phase: Callable[[], None] | None = None
    ) -> None:
        self.request = request
        self.state = VmState(request.name, request.attempt)
        self._on_phase = on_phase
        self._workdir = workdir
        self._process: asyncio.subprocess.Process | None = None
        self._reader = OwnedTask(f"vm-console:{request.name}")
        self._stopping = False
        self._accel = "tcg"
        self._boot_deadline = 0.0
        self.cpu_seconds_at_exit = 0.0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self, image: bytes) -> None:
        """Parse the verified image, lay it out and start QEMU; a bad image or a missing
        QEMU ends the VM Failed with the reason (nothing is left running)."""
        try:
            # Off the event loop: parsing and digesting 15 MB takes 50-90 ms, and in the twin
            # every unit's agent and BMC share this loop.
            await asyncio.to_thread(self._lay_out, image)
        except (ImageError, OSError) as exc:
            self._finish("Failed", None, str(exc))
            return
        if await self._launch(accelerator()):
            self._reader.start(self._follow)

    def _lay_out(self, image: bytes) -> None:
        """Check the image's manifest, write its kernel and its initrd with the user data
        (blocking). Scratch, not state: no fsync (0.1-0.2 s for 15 MB on the start path); a
        power cut takes the VM with it and the agent's next start removes the directory."""
        parsed = read_image(image)
        ramdisk = parsed.initrd + user_data_archive(self.request.user_data)
        write_private(self._workdir / "vmlinuz", parsed.kernel, durable=False)
        write_private(self._workdir / "initrd.img", ramdisk, durable=False)

    async def _launch(self, accel: str) -> bool:
        """Start QEMU on the laid-out kernel and initrd; False (the VM Failed) if it cannot."""
        try:
            argv = qemu_command(
                find_qemu(),
                kernel=self._workdir / "vmlinuz",
                initrd=self._workdir / "initrd.img",
                vcpus=self.request.vcpus,
                memory_mib=self.request.memory_mib,
                kernel_args=self.request.kernel_args,
                accel=accel,
            )
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except (HypervisorError, OSError) as exc:
            self._finish("Failed", None, str(exc))
            return False
        self._accel = accel
        self._boot_deadline = asyncio.get_running_loop().time() + BOOT_SECONDS[accel]
        return True

    def _finish(self, phase: str, code: int | None, reason: str) -> None:
        if self.state.phase not in ("Succeeded", "Failed"):
            self.state.phase, self.state.exit_code, self.state.reason = phase, code, reason
            self.state.changed()
            self._phase_changed()
            log.info("vm %s %s: %s", self.request.name, phase, reason or f"exit {code}")

    def _phase_changed(self) -> None:
        if self._on_phase is not None:
            self._on_phase()

    async def _follow(self) -> None:
        """Read the console until QEMU ends; start the guest again under TCG if KVM did
        not boot it (then KVM is off for every later VM of this process too)."""
        while await self._read_console():
            if self._stopping or not await self._launch("tcg"):
                return
            if self._stopping and self._process is not None:  # stopped while QEMU started
                await self._kill(self._process)
                self._finish("Failed", None, "stopped")
                return

    async def _kill(self, process: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

    async def _read_console(self) -> bool:
        """Follow one QEMU process; True when the guest is to be started again under TCG."""
        process = self._process
        assert process is not None and process.stdout is not None
        code: int | None = None
        while True:
            try:
                if self.state.phase == "Starting":  # until the guest's init said it runs
                    async with asyncio.timeout_at(self._boot_deadline):
                        line = await process.stdout.readline()
                else:
                    line = await process.stdout.readline()
            except ValueError:  # a line over the stream's 64 KiB limit: asyncio dropped it
                self.state.add_line("[racklet-agent: an over-long console line was dropped]")
                continue
            except TimeoutError:
                return await self._boot_timed_out(process)
            if not line:
                break
            text = line.decode(errors="replace").rstrip("\r\n")[:MAX_LINE_CHARS]
            self.cpu_seconds()  # sampled while the process is there to read
            if text.startswith(INIT_MARKER) and self.state.phase == "Starting":
                self.state.phase = "Running"
                self._phase_changed()
            elif text.startswith(EXIT_MARKER):
                with contextlib.suppress(ValueError):
                    code = int(text[len(EXIT_MARKER) :].strip())
            self.state.add_line(text)
        returncode = await process.wait()
        if self._stopping:
            self._finish("Failed", code, "stopped")
        elif self.state.phase == "Starting" and self._accel == "kvm":
            return self._kvm_failed(f"QEMU ended under KVM before the guest booted ({returncode})")
        elif code is None:
            self._finish("Failed", None, f"the VM ended without an exit code (QEMU {returncode})")
        else:
            self._finish("Succeeded" if code == 0 else "Failed", code, "")
        return False

    async def _boot_timed_out(self, process: asyncio.subprocess.Process) -> bool:
        """The guest's init did not start in time: under KVM, KVM does not work here (the
        guest is started again under TCG); under TCG the VM Failed, saying so."""
        seconds = BOOT_SECONDS[self._accel]
        await self._kill(process)
        if self._accel == "kvm" and not self._stopping:
            return self._kvm_failed(f"a guest did not boot under KVM in {seconds:g} s")
        self._finish("Failed", None, f"the guest's init did not start in {seconds:g} s")
        return False

    def _kvm_failed(self, why: str) -> bool:
        disable_kvm(why)
        self.state.add_line(f"racklet-agent: {why}; starting it again under TCG")
        log.warning("vm %s: %s; TCG from now on", self.request.name, why)
        return True

    def done(self) -> bool:
        return self.state.phase in ("Succeeded", "Failed")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the QEMU process so far (from ``/proc``; once it ended,
        the last sample, taken with each console line)."""
        pid = self.pid
        if pid is None or self.done():
            return self.cpu_seconds_at_exit
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            return self.cpu_seconds_at_exit
        self.cpu_seconds_at_exit = max(self.cpu_seconds_at_exit, used)
        return self.cpu_seconds_at_exit

    async def wait(self) -> None:
        task = self._reader.task
        if task is not None:
            await asyncio.shield(task)

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; then the console reader ends."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(grace):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        task = self._reader.task
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        await self._reader.stop()
        self._finish("Failed", None, "stopped")
        await asyncio.to_thread(shutil.rmtree, self._workdir, True)


class Hypervisor:
    """The unit's VMs by name; every QEMU it started is stopped by :meth:`close`."""

    def __init__(self, scratch: Path | None = None) -> None:
        self._scratch = scratch
        self.vms: dict[str, Vm] = {}
        self.on_phase: Callable[[], None] | None = None
        """Called when a VM's phase changes (Running, an end): its report goes out now."""

    async def prepare(self) -> None:
        """Make the scratch directory (0700) and remove what a VM of an earlier run of this
        unit left there (its agent was killed): no QEMU of this run uses it yet."""
        scratch = self._scratch
        if scratch is None:
            return

        def clean() -> None:
            make_dir(scratch)
            for stale in scratch.glob("vm-*"):
                shutil.rmtree(stale, ignore_errors=True)

        await asyncio.to_thread(clean)

    async def start(self, request: VmRequest, image: bytes) -> Vm:
        """Start one attempt of a VM (an older attempt of the same name is stopped first)."""
        old = self.vms.get(request.name)
        if old is not None:
            await old.stop()
        workdir = Path(tempfile.mkdtemp(prefix=f"vm-{request.name}-", dir=self._scratch))
        vm = Vm(request, workdir, self.on_phase)
        self.vms[request.name] = vm
        await vm.start(image)
        return vm

    async def remove(self, name: str) -> None:
        vm = self.vms.pop(name, None)
        if vm is not None:
            await vm.stop()

    def cpu_seconds(self) -> float:
        return sum(vm.cpu_seconds() for vm in self.vms.values())

    def reports(self) -> list[dict[str, object]]:
        return [vm.state.report() for vm in self.vms.values()]

    async def close(self) -> None:
        """Stop every VM, even when cancelled (a power cut must not leave QEMU running)."""
        vms, self.vms = list(self.vms.values()), {}
        await asyncio.shield(asyncio.gather(*(vm.stop(grace=1.0) for vm in vms)))
