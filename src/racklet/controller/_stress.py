"""Stress jobs: keep a share of a running unit's cores busy for a while, so a class can watch
power and heat follow load before real workloads arrive (``racklet stress``).

The request is an API action (``POST /api/v1/computeunits/{name}/stress``: an operator of
that unit or an admin; audited like every state-changing request). It is recorded as an
annotation on the ComputeUnit (:data:`STRESS_ANNOTATION`, JSON: ``id``, ``cpu`` 0..1,
``seconds``), so it survives a controller restart or a change of leader. The job reaches the
unit in the reply to its next heartbeat over the machine listener (mutual TLS: the unit proves
who it is, the controller never opens a connection to the unit); the agent runs it on its own
clock and names the job it last took in its heartbeats, and the controller then clears the
annotation, so a job runs once: a unit that reboots mid-job does not start it again.

Refused with a clear ``Status``: a unit that is not Running (no OS to run it), a share
outside 0..100 % or a duration outside (0, 24 h].
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from racklet.api import ComputeUnit, validate
from racklet.api._meta import Model
from racklet.controller._resources_http import read_body
from racklet.controller._status import status_response
from racklet.store import Conflict, NotFound, Store

STRESS_ANNOTATION = "racklet.dev/stress-request"
MAX_STRESS_SECONDS = 86_400.0
_WRITE_ATTEMPTS = 8


class StressRequest(Model):
    """What ``racklet stress`` sends."""

    cpu_percent: Annotated[float, Field(ge=0, le=100)]
    seconds: Annotated[float, Field(gt=0, le=MAX_STRESS_SECONDS)]


class StressJob(Model):
    """The job as the annotation and the heartbeat reply carry it."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    cpu: Annotated[float, Field(ge=0, le=1)]
    seconds: Annotated[float, Field(gt=0, le=MAX_STRESS_SECONDS)]


def pending_job(unit: ComputeUnit) -> StressJob | None:
    """The job recorded on ``unit``, if any (a malformed annotation is no job)."""
    raw = unit.metadata.annotations.get(STRESS_ANNOTATION)
    if not raw:
        return None
    try:
        return StressJob.model_validate_json(raw)
    except ValueError:
        return None


def add_stress_route(api: APIRouter, store: Store, enqueue: Callable[[str, str], None]) -> None:
    @api.post("/computeunits/{name}/stress", status_code=202)
    async def stress(name: str, request: Request) -> Response:
        body = validate(StressRequest, await read_body(request))
        job = StressJob(
            id=uuid.uuid4().hex[:12], cpu=body.cpu_percent / 100.0, seconds=body.seconds
        )
        for _ in range(_WRITE_ATTEMPTS):
            unit = await store.get(ComputeUnit, name)
            if unit.status.phase != "Running":
                return status_response(
                    409,
                    f"computeunit {name!r} is {unit.status.phase}: a stress job runs on its OS,"
                    " which must be Running",
                    reason="Conflict",
                    details={"name": name, "kind": "computeunit"},
                )
            annotation = json.dumps(job.model_dump(mode="json"), separators=(",", ":"))
            unit.metadata.annotations[STRESS_ANNOTATION] = annotation
            try:
                await store.update(unit)
            except Conflict:
                continue
            enqueue("ComputeUnit", name)
            return status_response(
                202,
                f"stress job on computeunit {name!r}: {body.cpu_percent:g} % of its cores for "
                f"{body.seconds:g} s (starts with its next heartbeat)",
                reason="Accepted",
                details={"name": name, "kind": "computeunit", "stressJob": job.model_dump()},
            )
        raise Conflict("ComputeUnit", name, "", "changing")


async def job_for_heartbeat(store: Store, unit_name: str, taken: str | None) -> StressJob | None:
    """The job to hand the unit in its heartbeat reply; clears one the agent has taken."""
    for _ in range(_WRITE_ATTEMPTS):
        try:
            unit = await store.get(ComputeUnit, unit_name)
        except NotFound:
            return None
        job = pending_job(unit)
        if job is None and STRESS_ANNOTATION not in unit.metadata.annotations:
            return None
        if job is not None and job.id != taken:
            return job
        del unit.metadata.annotations[STRESS_ANNOTATION]  # taken (or malformed): done here
        try:
            await store.update(unit)
        except Conflict:
            continue
        return None
    return None
