"""Errors as Kubernetes ``Status`` objects: the one error shape every API answer uses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from racklet.api import InvalidObject, InvalidSelector, problems
from racklet.errors import RackletError
from racklet.limits import InputRejected
from racklet.store import AlreadyExists, Conflict, Expired, NotFound, Unavailable

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def status_response(
    code: int,
    message: str,
    *,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Success" if code < 400 else "Failure",
        "code": code,
        "reason": reason or _REASONS.get(code, "Unknown"),
        "message": message,
    }
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=code, headers=headers)


def invalid(messages: list[str]) -> JSONResponse:
    causes = []
    for text in messages:
        field, _, msg = text.partition(": ")
        causes.append({"field": field, "message": msg or text})
    return status_response(422, "; ".join(messages), details={"causes": causes})


def install_error_handlers(app: FastAPI) -> None:
    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers) if exc.headers else None
        return status_response(exc.status_code, str(exc.detail), headers=headers)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        messages = []
        for error in exc.errors():
            loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
            messages.append(f"{'.'.join(loc) or 'request'}: {error.get('msg', 'invalid')}")
        return invalid(messages)

    async def on_racklet(_: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(RackletError, on_racklet)


def error_response(exc: Exception) -> JSONResponse:
    """The ``Status`` answer to a Racklet error raised while serving a request (for a route
    served outside FastAPI's handlers too, so every route maps errors the same way)."""
    if isinstance(exc, NotFound):
        return status_response(404, str(exc))
    if isinstance(exc, AlreadyExists):
        return status_response(409, str(exc), reason="AlreadyExists")
    if isinstance(exc, Conflict):
        return status_response(409, str(exc))
    if isinstance(exc, InvalidObject):
        return invalid(exc.problems)
    if isinstance(exc, InputRejected):
        return (
            invalid([exc.message])
            if exc.status == 422
            else status_response(exc.status, exc.message)
        )
    if isinstance(exc, InvalidSelector):
        return status_response(400, str(exc))
    if isinstance(exc, Expired):
        return status_response(410, str(exc))
    if isinstance(exc, Unavailable):
        return status_response(503, str(exc), headers={"Retry-After": "1"})
    return status_response(500, f"{type(exc).__name__}: {exc}")


__all__ = ["error_response", "install_error_handlers", "invalid", "problems", "status_response"]
