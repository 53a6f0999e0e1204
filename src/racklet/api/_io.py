"""Reading and writing resources as JSON/YAML, with validation errors that name the field."""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from racklet.api._kinds import KINDS
from racklet.api._meta import API_VERSION, Object
from racklet.api.errors import InvalidObject
from racklet.limits import InputRejected, parse_yaml

M = TypeVar("M", bound=BaseModel)


MAX_PROBLEMS = 20


def problems(exc: ValidationError) -> list[str]:
    """One ``field.path: message`` per error, with wire (camelCase) field names.

    At most :data:`MAX_PROBLEMS`, then a count: a body of 10,000 bad values must not
    become a 10,000-line answer.
    """
    out = []
    errors = exc.errors(include_url=False)
    for error in errors[:MAX_PROBLEMS]:
        path = ".".join(str(part) for part in error["loc"])
        out.append(f"{path}: {error['msg']}" if path else str(error["msg"]))
    if len(errors) > MAX_PROBLEMS:
        out.append(f"request: {len(errors) - MAX_PROBLEMS} more problems not listed")
    return out


def validate(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``, raising :class:`InvalidObject` that names each field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidObject(problems(exc)) from exc


def parse(data: Any) -> Object:
    """A resource of whichever kind ``data["kind"]`` names."""
    if not isinstance(data, dict):
        raise InvalidObject(["an object (mapping) is required"])
    kind = data.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidObject([f"kind: must be one of {', '.join(sorted(KINDS))}, got {kind!r}"])
    api_version = data.get("apiVersion")
    if api_version is not None and api_version != API_VERSION:
        raise InvalidObject([f"apiVersion: must be {API_VERSION}, got {api_version!r}"])
    return validate(model, data)


def to_dict(obj: BaseModel) -> dict[str, Any]:
    """The wire form: camelCase keys, JSON-compatible values."""
    return obj.model_dump(by_alias=True, mode="json")


def to_yaml(obj: BaseModel) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def from_yaml(text: str) -> Object:
    """A resource from one YAML document, read within ``racklet.limits`` (no aliases)."""
    try:
        data = parse_yaml(text)
    except InputRejected as exc:
        raise InvalidObject([exc.message.replace("body: ", "", 1)]) from exc
    return parse(data)
