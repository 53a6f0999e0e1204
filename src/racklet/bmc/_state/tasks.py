"""Long actions (a firmware update) as Tasks a client can poll (served by the ``tasks`` family).

A long action answers 202 with a ``Location`` of its task monitor. The monitor answers 202
(with the Task) while the work runs; once it is done, the operation's own answer: 200 and
the Task if it completed, or the Redfish error that ended it. The background work of every
task is owned by :class:`TaskRegistry` and cancelled and awaited by :meth:`TaskRegistry.stop`.
Finished tasks are kept until ``capacity`` is reached, then the oldest finished ones go.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from racklet.bmc._http.odata import resource
from racklet.bmc._http.registry import RedfishErrorReply, message
from racklet.bmc._http.uris import TASK_SERVICE, TASKS
from racklet.log import ContextLogger

MONITORS = f"{TASK_SERVICE}/TaskMonitors"
RETRY_AFTER = "1"
"""Seconds a client is asked to wait between polls of a running task's monitor."""
_RUNNING = ("New", "Starting", "Running")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Task:
    """One long action: its state as Redfish shows it, and how it ended."""

    id: str
    name: str
    operation: str
    target: str
    state: str = "New"
    status: str = "OK"
    percent: int = 0
    started: str = field(default_factory=_now)
    ended: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    error: RedfishErrorReply | None = None

    @property
    def path(self) -> str:
        return f"{TASKS}/{self.id}"

    @property
    def monitor(self) -> str:
        return f"{MONITORS}/{self.id}"

    @property
    def running(self) -> bool:
        return self.state in _RUNNING

    def progress(self, percent: int, key: str | None = None, *args: object) -> None:
        """Advance the task, noting a registry message (``Prefix.Key``) if given."""
        self.percent = max(self.percent, min(100, percent))
        if key is not None:
            self.messages.append(message(key, *args))

    def redfish(self) -> dict[str, Any]:
        body = resource(
            "Task",
            self.path,
            Id=self.id,
            Name=self.name,
            TaskState=self.state,
            TaskStatus=self.status,
            StartTime=self.started,
            PercentComplete=self.percent,
            TaskMonitor=self.monitor,
            HidePayload=False,
            Payload={"HttpOperation": self.operation, "TargetUri": self.target},
            Messages=list(self.messages),
        )
        if self.ended is not None:
            body["EndTime"] = self.ended
        return body


Work = Callable[[Task], Awaitable[None]]
"""The body of a task: updates ``task`` as it goes; raises RedfishErrorReply to fail it."""


class TaskRegistry:
    def __init__(self, log: ContextLogger, capacity: int = 32) -> None:
        self._log = log.bind(request="tasks")
        self.capacity = capacity
        self._tasks: dict[str, Task] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._next = 1

    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def busy(self, operation: str, target: str) -> bool:
        """True while a task of ``operation`` on ``target`` is still running."""
        return any(
            t.running and t.operation == operation and t.target == target
            for t in self._tasks.values()
        )

    def start(self, name: str, operation: str, target: str, work: Work) -> Task:
        task = Task(str(self._next), name, operation, target)
        self._next += 1
        self._forget_finished()
        self._tasks[task.id] = task
        self._runners[task.id] = asyncio.create_task(
            self._run(task, work), name=f"bmc:task:{task.id}"
        )
        return task

    def _forget_finished(self) -> None:
        finished = [t.id for t in self._tasks.values() if not t.running]
        while len(self._tasks) >= self.capacity and finished:
            del self._tasks[finished.pop(0)]

    async def _run(self, task: Task, work: Work) -> None:
        task.state = "Running"
        task.progress(0, "TaskEvent.TaskStarted", task.id)
        try:
            await work(task)
        except RedfishErrorReply as exc:
            self._finish(task, exc)
            self._log.warning(f"task {task.id} ({task.name}) failed: {exc}")
        except asyncio.CancelledError:
            task.state, task.status, task.ended = "Cancelled", "Warning", _now()
            raise
        except Exception:
            self._log.exception(f"task {task.id} ({task.name}) crashed")
            self._finish(task, RedfishErrorReply(500, "InternalError"))
        else:
            task.state, task.ended = "Completed", _now()
            task.progress(100, "TaskEvent.TaskCompletedOK", task.id)
            self._log.info(f"task {task.id} ({task.name}) completed")
        finally:
            self._runners.pop(task.id, None)

    @staticmethod
    def _finish(task: Task, error: RedfishErrorReply) -> None:
        task.state, task.status, task.ended, task.error = "Exception", "Critical", _now(), error
        task.messages.extend(error.info)
        task.messages.append(message("TaskEvent.TaskAborted", task.id))

    async def wait(self, task_id: str) -> None:
        """Until the task's work has ended (for tests and orderly shutdown)."""
        runner = self._runners.get(task_id)
        if runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(runner)

    async def stop(self) -> None:
        runners = list(self._runners.values())
        for runner in runners:
            runner.cancel()
        for runner in runners:
            with contextlib.suppress(asyncio.CancelledError):
                await runner
