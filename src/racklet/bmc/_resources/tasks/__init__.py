"""``TaskService``: the Tasks of long actions and their monitors.

A long action answers 202 with a ``Location`` of its task monitor. The monitor answers 202
(with the Task) while the work runs; once it is done, the operation's own answer: 200 and
the Task if it completed, or the Redfish error that ended it. The tasks themselves are the
BMC's state (:mod:`racklet.bmc._state.tasks`).
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.odata import collection, link
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import page, respond, route
from racklet.bmc._http.uris import TASK_SERVICE, TASKS
from racklet.bmc._state.tasks import MONITORS, RETRY_AFTER, Task, TaskRegistry


class TaskService(Resource):
    redfish_type = "TaskService"

    Id: str = "TaskService"
    Name: str = "Task Service"
    ServiceEnabled: bool = True
    DateTime: str
    CompletedTaskOverWritePolicy: str = "Oldest"
    LifeCycleEventOnTaskStateChange: bool = False
    Status: dict[str, str]
    Tasks: dict[str, str]


class TaskResources:
    def __init__(self, registry: TaskRegistry) -> None:
        self.registry = registry

    def _find(self, request: Request) -> Task:
        task = self.registry.get(request.path_params["task_id"])
        if task is None:
            raise RedfishErrorReply(404, "ResourceNotFound", "Task", request.path_params["task_id"])
        return task

    async def service(self, request: Request) -> Response:
        declared = TaskService(
            Id="TaskService",
            Name="Task Service",
            ServiceEnabled=True,
            DateTime=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            CompletedTaskOverWritePolicy="Oldest",
            LifeCycleEventOnTaskStateChange=False,
            Status={"State": "Enabled", "Health": "OK"},
            Tasks=link(TASKS),
        )
        return respond(declared.body(TASK_SERVICE))

    async def tasks(self, request: Request) -> Response:
        members = page(request, [t.path for t in self.registry.tasks()])
        return respond(collection("TaskCollection", TASKS, "Task Collection", members))

    async def one_task(self, request: Request) -> Response:
        return respond(self._find(request).redfish())

    async def monitor(self, request: Request) -> Response:
        task = self._find(request)
        if task.running:
            headers = {"Location": task.monitor, "Retry-After": RETRY_AFTER}
            return respond(task.redfish(), 202, headers)
        if task.error is not None:
            error = task.error
            return respond(error.body(), error.status, error.headers)
        return respond(task.redfish())


def routes(registry: TaskRegistry) -> list[BaseRoute]:
    res = TaskResources(registry)
    return [
        route(TASK_SERVICE, GET=res.service),
        route(TASKS, GET=res.tasks),
        route(f"{TASKS}/{{task_id}}", GET=res.one_task),
        route(f"{MONITORS}/{{task_id}}", GET=res.monitor),
    ]
