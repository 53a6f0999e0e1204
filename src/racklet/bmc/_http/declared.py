"""Redfish bodies as typed field declarations: one class says what a resource shows, which
of its properties a PATCH may change, their allowable values and the parameters of an action.

A family declares its body as a :class:`Declared` subclass (PascalCase fields, as Redfish
names them) and marks the writable ones ``Annotated[..., WRITABLE]``. The same declaration
then:

- serializes the body (:meth:`Declared.dump`: the fields that were set, in declaration
  order; a writable ``Literal`` field adds its ``@Redfish.AllowableValues``);
- validates a PATCH (:func:`validate_patch`): unknown property, read-only property, wrong
  type, value not in the list, each with its DMTF Base message and JSON pointer;
- validates an action's parameters (:func:`validate_action`) and describes them for its
  ``ActionInfo`` (:func:`action_parameters`).

What a change *means* (the last Administrator may not be demoted, an LED that does not
exist) stays with the family; only the shape is checked here, so no family writes
``isinstance`` checks by hand. Bodies are built per request and never cached, so a
declaration holds no I/O and no state.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from racklet.bmc._http.odata import ROOT, odata_type
from racklet.bmc._http.registry import RedfishErrorReply

_D = TypeVar("_D", bound="Declared")


@dataclass(frozen=True)
class Writable:
    """Marks a declared field as changeable by PATCH (``Annotated[T, WRITABLE]``)."""

    allowable: bool = True
    """Whether a ``Literal`` field also shows ``@Redfish.AllowableValues``."""
    minimum: int | None = None
    maximum: int | None = None
    """The range a client may write, or a string's longest length (what the service shows
    may lie outside it, e.g. a setting made at start-up)."""


WRITABLE = Writable()
_JSON_LEAVES = frozenset({type(None), str, int, float, bool, dict})
"""Field value types that are JSON as they are (a dict of a body holds no Declared)."""


class Declared(BaseModel):
    """A Redfish object (a resource or one of its complex properties) as typed fields."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        """The JSON body: the fields that were set, nested objects dumped the same way."""
        out: dict[str, Any] = {}
        fields_set = self.__pydantic_fields_set__
        values = self.__dict__
        for name, key, choices in _layout(type(self)):
            value = values[name]
            kind = type(value)
            if kind in _JSON_LEAVES:  # most fields: checked by exact type, not isinstance
                if value is None and name not in fields_set:
                    continue  # an optional property left out; one set to None is a JSON null
            elif isinstance(value, Declared):  # (isinstance on a model class is slow)
                value = value.dump()
            elif kind is list and value and isinstance(value[0], Declared):
                value = [item.dump() for item in value]
            out[key] = value  # anything else is JSON already (dicts hold no Declared)
            if choices is not None:
                out[f"{key}@Redfish.AllowableValues"] = list(choices)
        return out


class Resource(Declared):
    """A resource with its ``@odata`` head; ``redfish_type`` names its DMTF schema."""

    redfish_type: ClassVar[str]

    def body(self, path: str) -> dict[str, Any]:
        """The full resource body at ``path``."""
        return {
            "@odata.type": odata_type(self.redfish_type),
            "@odata.id": path,
            "@odata.context": f"{ROOT}/$metadata#{self.redfish_type}.{self.redfish_type}",
            **self.dump(),
        }


def _marker(info: FieldInfo) -> Writable | None:
    return _marked(info)[0]


def _marked(info: FieldInfo) -> tuple[Writable | None, Any]:
    """A field's ``Writable`` marker and the type a PATCH must give it.

    ``Annotated[T, WRITABLE]`` marks the whole field; ``Annotated[T, WRITABLE] | None`` (a
    property only some boards show) marks ``T``: the property is left out when absent, and a
    PATCH may not write it null.
    """
    found = next((m for m in info.metadata if isinstance(m, Writable)), None)
    if found is not None:
        return found, info.annotation
    if get_origin(info.annotation) in (typing.Union, types.UnionType):
        for arg in get_args(info.annotation):
            if get_origin(arg) is Annotated:
                inner = next((m for m in arg.__metadata__ if isinstance(m, Writable)), None)
                if inner is not None:
                    return inner, arg
    return None, info.annotation


def _literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a ``Literal[...]`` (or ``Literal[...] | None``) annotation, also one
    marked ``Annotated[Literal[...], WRITABLE] | None``."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    if get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in get_args(annotation):
            if get_origin(arg) is Annotated:
                arg = get_args(arg)[0]
            if get_origin(arg) is Literal:
                return get_args(arg)
    return None


@functools.cache
def _layout(model: type[Declared]) -> tuple[tuple[str, str, tuple[Any, ...] | None], ...]:
    """Per field, in declaration order: its name, its JSON key, its allowable values."""
    return tuple(
        (name, info.alias or name, _allowable(model, name))
        for name, info in model.model_fields.items()
    )


@functools.cache
def _allowable(model: type[Declared], name: str) -> tuple[Any, ...] | None:
    info = model.model_fields[name]
    marker = _marker(info)
    if marker is None or not marker.allowable:
        return None
    return _literal_choices(info.annotation)


@functools.cache
def _by_key(model: type[Declared]) -> dict[str, tuple[str, FieldInfo]]:
    return {(info.alias or name): (name, info) for name, info in model.model_fields.items()}


@functools.cache
def _adapter(model: type[Declared], name: str) -> TypeAdapter[Any]:
    annotation: Any = model.model_fields[name].annotation
    return TypeAdapter(annotation)


@functools.cache
def _patch_adapter(model: type[Declared], name: str) -> TypeAdapter[Any]:
    """What a PATCH may write into the field (see :func:`_marked`)."""
    annotation: Any = _marked(model.model_fields[name])[1]
    return TypeAdapter(annotation)


def _nested(info: FieldInfo) -> type[Declared] | None:
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, Declared):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, Declared):
            return arg
    return None


def _has_writable(model: type[Declared]) -> bool:
    return any(
        _marker(info) is not None or (_nested(info) is not None and _has_writable(_nested(info)))  # type: ignore[arg-type]
        for info in model.model_fields.values()
    )


def _check_value(model: type[Declared], name: str, value: Any, pointer: str) -> Any:
    info = model.model_fields[name]
    try:
        checked = _patch_adapter(model, name).validate_python(value, strict=True)
    except ValidationError as exc:
        choices = _literal_choices(info.annotation)
        if choices is not None and isinstance(value, type(choices[0])):
            raise RedfishErrorReply(
                400,
                "PropertyValueNotInList",
                str(value),
                pointer,
                resolution=f"Use one of: {', '.join(map(str, choices))}.",
            ) from exc
        raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(value), pointer) from exc
    marker = _marker(info)
    if marker is not None and isinstance(checked, int) and not isinstance(checked, bool):
        low, high = marker.minimum, marker.maximum
        if (low is not None and checked < low) or (high is not None and checked > high):
            raise RedfishErrorReply(400, "PropertyValueOutOfRange", json.dumps(value), pointer)
    longest = marker.maximum if marker is not None else None
    if isinstance(checked, str) and longest is not None and len(checked) > longest:
        raise RedfishErrorReply(400, "PropertyValueFormatError", json.dumps(value), pointer)
    return checked


def validate_create(
    model: type[_D],
    body: dict[str, Any],
    missing: str = "CreateFailedMissingReqProperties",
    prefix: str = "",
) -> _D:
    """A POST body that creates something, checked against ``model``: every field may be
    given (writable or not), a field without a default must be; ``missing`` names the Base
    message for one that is not."""
    keys = _by_key(model)
    for key in body:
        if key not in keys:
            raise RedfishErrorReply(400, "PropertyUnknown", f"{prefix}{key}")
    values: dict[str, Any] = {}
    for key, (name, info) in keys.items():
        if key in body:
            values[name] = _check_value(model, name, body[key], key)
        elif info.is_required():
            raise RedfishErrorReply(400, missing, f"{prefix}{key}")
    return model.model_validate(values)


def validate_patch(model: type[Declared], body: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The PATCH ``body`` checked against ``model``'s declaration: the changes, typed.

    Raises the DMTF Base error a client should see for the first property that is unknown
    (``PropertyUnknown``), read-only (``PropertyNotWritable``), of the wrong type
    (``PropertyValueTypeError``) or not an allowable value (``PropertyValueNotInList``).
    """
    changes: dict[str, Any] = {}
    keys = _by_key(model)
    for key, value in body.items():
        pointer = f"{prefix}{key}"
        found = keys.get(key)
        if found is None:
            raise RedfishErrorReply(400, "PropertyUnknown", pointer)
        name, info = found
        nested = _nested(info)
        if nested is not None and _has_writable(nested):
            if not isinstance(value, dict):
                raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(value), pointer)
            changes[key] = validate_patch(nested, value, f"{pointer}/")
            continue
        if _marker(info) is None:
            raise RedfishErrorReply(400, "PropertyNotWritable", pointer)
        changes[key] = _check_value(model, name, value, pointer)
    return changes


def validate_action(model: type[_D], body: dict[str, Any], action: str) -> _D:
    """An action's parameters checked against their declaration (every field a parameter;
    a field without a default is required), with the DMTF ``ActionParameter*`` errors."""
    keys = _by_key(model)
    body = {k: v for k, v in body.items() if k in keys or not k.startswith("@")}  # annotations
    for key in body:
        if key not in keys:
            raise RedfishErrorReply(400, "ActionParameterUnknown", action, key)
    values: dict[str, Any] = {}
    for key, (name, info) in keys.items():
        if key not in body:
            if info.is_required():
                raise RedfishErrorReply(400, "ActionParameterMissing", action, key)
            continue
        value = body[key]
        try:
            values[name] = _adapter(model, name).validate_python(value, strict=True)
        except ValidationError as exc:
            choices = _literal_choices(info.annotation)
            resolution = None if choices is None else f"Use one of: {', '.join(map(str, choices))}."
            if choices is not None and isinstance(value, str):
                raise RedfishErrorReply(
                    400,
                    "ActionParameterValueNotInList",
                    value,
                    key,
                    action,
                    resolution=resolution,
                ) from exc
            raise RedfishErrorReply(
                400,
                "ActionParameterValueTypeError",
                json.dumps(value),
                key,
                action,
                resolution=resolution,
            ) from exc
    return model(**values)


_DATA_TYPES = {str: "String", bool: "Boolean", int: "Number", float: "Number"}


def action_parameters(model: type[Declared]) -> list[dict[str, Any]]:
    """The ``Parameters`` of an ``ActionInfo``, from the action's declaration."""
    out = []
    for name, info in model.model_fields.items():
        choices = _literal_choices(info.annotation)
        entry: dict[str, Any] = {"Name": info.alias or name, "Required": info.is_required()}
        kinds = [info.annotation, *get_args(info.annotation)]
        if choices is not None:
            entry["DataType"] = _DATA_TYPES.get(type(choices[0]), "String")
            entry["AllowableValues"] = [str(choice) for choice in choices]
        elif any(get_origin(kind) is list for kind in kinds):
            entry["DataType"] = "StringArray"
        else:
            simple = [_DATA_TYPES[kind] for kind in kinds if kind in _DATA_TYPES]
            entry["DataType"] = simple[0] if simple else "Object"
            if entry["DataType"] == "Object":
                entry["ObjectDataType"] = "#Resource.Resource"
        out.append(entry)
    return out


def allowable(model: type[Declared], name: str) -> list[Any]:
    """The declared choices of a ``Literal`` field (for an action's AllowableValues)."""
    return list(_choices(model, name))


@functools.cache
def _choices(model: type[Declared], name: str) -> tuple[Any, ...]:
    return _literal_choices(model.model_fields[name].annotation) or ()
