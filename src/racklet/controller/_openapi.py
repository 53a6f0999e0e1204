"""The API's OpenAPI 3.1 document, served at ``/openapi/v3`` (behind the bearer token).

FastAPI describes the routes it sees; the resource API is one set of generic routes
(``/api/v1/{plural}``), which would tell a reader (or an API fuzzer such as schemathesis)
nothing about kinds and bodies. So the generic paths are expanded here into one path per kind,
as Kubernetes publishes them, with each kind's pydantic schema as its request body, the
query parameters the handlers read, and the bearer scheme. Built once, on first request.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from racklet.api import KIND_INFO, KindInfo
from racklet.api._meta import Model

_REF = "#/components/schemas/{model}"
_JSON = "application/json"
_QUERY = {
    "labelSelector": "Only objects whose labels match, e.g. `tier=web,!legacy`.",
    "resourceVersion": "List: ignored. Watch: changes after this store revision.",
    "watch": "`true` streams changes as newline-delimited JSON (ADDED, MODIFIED, ...).",
}


def _body(schema: dict[str, Any], *types: str) -> dict[str, Any]:
    return {"required": True, "content": {t: {"schema": schema} for t in types}}


def _expand(operation: dict[str, Any], info: KindInfo, method: str) -> dict[str, Any]:
    """One generic operation, made specific to one kind."""
    op = copy.deepcopy(operation)
    op["operationId"] = f"{operation.get('operationId', method)}_{info.plural}"
    op["tags"] = [info.kind]
    op["parameters"] = [p for p in op.get("parameters", []) if p.get("name") != "plural"]
    ref = {"$ref": _REF.format(model=info.kind)}
    if method in ("post", "put"):
        op["requestBody"] = _body(ref, _JSON, "application/yaml")
    elif method == "patch":
        patch = {"type": "object", "description": f"RFC 7386 merge patch of a {info.kind}"}
        op["requestBody"] = _body(patch, "application/merge-patch+json", _JSON, "application/yaml")
    return op


def openapi_document(app: FastAPI, bodies: dict[str, type[Model]]) -> dict[str, Any]:
    """The document, with ``/api/v1/{plural}...`` expanded per kind; ``bodies`` names the
    model of each other ``POST`` route's body (the handlers read it themselves)."""
    doc = get_openapi(
        title="Racklet API",
        version="v1alpha1",
        summary="The rack's declared and observed state, Kubernetes-style.",
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    models: dict[str, type[Model]] = {info.kind: info.model for info in KIND_INFO}
    models.update({model.__name__: model for model in bodies.values()})
    for name, model in models.items():
        schema = model.model_json_schema(by_alias=True, ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    paths: dict[str, Any] = {}
    for path, item in doc.get("paths", {}).items():
        if not path.startswith("/api/"):
            paths[path] = {m: {**op, "security": []} for m, op in item.items()}  # open routes
            continue
        if "{plural}" not in path:
            if path in bodies and "post" in item:
                ref = {"$ref": _REF.format(model=bodies[path].__name__)}
                item["post"]["requestBody"] = _body(ref, _JSON)
            paths[path] = item
            continue
        for info in KIND_INFO:
            specific = path.replace("{plural}", info.plural)
            paths[specific] = {m: _expand(op, info, m) for m, op in item.items()}
    listing = "/api/v1/{plural}".replace("{plural}", "")
    for info in KIND_INFO:
        get = paths.get(f"{listing}{info.plural}", {}).get("get")
        if get is not None:
            get["parameters"] = [
                *get["parameters"],
                *(
                    {"name": n, "in": "query", "required": False, "description": d,
                     "schema": {"type": "string"}}
                    for n, d in _QUERY.items()
                ),
            ]  # fmt: skip
    doc["paths"] = paths
    doc["security"] = [{"bearer": []}]
    return doc


def install_openapi(app: FastAPI, bodies: dict[str, type[Model]]) -> None:
    """Make ``app.openapi()`` return :func:`openapi_document` (cached)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app, bodies)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
