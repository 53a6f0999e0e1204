"""Redfish error responses of the RMC, from the DMTF Base message registry (Base.1.22).

Only the messages the RMC's aggregation produces are listed; its accounts, sessions and
privilege refusals answer with the BMC's own (``racklet.bmc.login``), and errors a unit BMC
returns are passed through unchanged (with their URIs rewritten).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

JSON_TYPE = "application/json;charset=utf-8"
ODATA_HEADERS = {"OData-Version": "4.0", "Cache-Control": "no-cache"}

_BASE: dict[str, tuple[str, str, str]] = {
    "ResourceNotFound": (
        "The requested resource of type %1 named '%2' was not found.",
        "Critical",
        "Provide a valid resource identifier and resubmit the request.",
    ),
    "OperationNotAllowed": (
        "The HTTP method is not allowed on this resource.",
        "Critical",
        "None.",
    ),
    "MalformedJSON": (
        "The request body submitted was malformed JSON and could not be parsed by the "
        "receiving service.",
        "Critical",
        "Ensure that the request body is valid JSON and resubmit the request.",
    ),
    "PropertyMissing": (
        "The property %1 is a required property and must be included in the request.",
        "Warning",
        "Ensure that the property is in the request body and has a valid value and resubmit "
        "the request if the operation failed.",
    ),
    "ServiceTemporarilyUnavailable": (
        "The service is temporarily unavailable.  Retry in %1 seconds.",
        "Critical",
        "Wait for the indicated retry duration and retry the operation.",
    ),
    "ResourceAtUriUnauthorized": (
        "While accessing the resource at '%1', the service received an authorization error '%2'.",
        "Critical",
        "Ensure that the appropriate access is provided for the service in order for it to "
        "access the URI.",
    ),
    "PayloadTooLarge": (
        "The supplied payload exceeds the maximum size supported by the service.",
        "Critical",
        "Correct the request body and resubmit the request if it failed.",
    ),
    "InternalError": (
        "The request failed due to an internal service error.  The service is still operational.",
        "Critical",
        "Resubmit the request.  If the problem persists, consider resetting the service.",
    ),
    "ActionParameterMissing": (
        "The action %1 requires the parameter %2 to be present in the request body.",
        "Critical",
        "Supply the action with the required parameter in the request body when the request "
        "is resubmitted.",
    ),
    "ActionParameterValueNotInList": (
        "The value '%1' for the parameter %2 in the action %3 is not in the list of acceptable "
        "values.",
        "Warning",
        "Choose a value from the enumeration list that the implementation can support and "
        "resubmit the request if the operation failed.",
    ),
    "ActionParameterValueError": (
        "The value for the parameter %1 in the action %2 is invalid.",
        "Warning",
        "Correct the value for the parameter in the request body and resubmit the request if "
        "the operation failed.",
    ),
    "ActionParameterUnknown": (
        "The action %1 was submitted with the invalid parameter %2.",
        "Warning",
        "Correct the invalid action parameter and resubmit the request if the operation failed.",
    ),
    "PropertyValueNotInList": (
        "The value '%1' for the property %2 is not in the list of acceptable values.",
        "Warning",
        "Choose a value from the enumeration list that the implementation can support and "
        "resubmit the request if the operation failed.",
    ),
    "PropertyNotWritable": (
        "The property %1 is a read-only property and cannot be assigned a value.",
        "Warning",
        "Remove the property from the request body and resubmit the request if the operation "
        "failed.",
    ),
    "PropertyValueTypeError": (
        "The value '%1' for the property %2 is not a type that the property can accept.",
        "Warning",
        "Correct the value for the property in the request body and resubmit the request if the "
        "operation failed.",
    ),
}


def error_body(message_id: str, *args: str) -> dict[str, Any]:
    text, severity, resolution = _BASE[message_id]
    for index, arg in enumerate(args, start=1):
        text = text.replace(f"%{index}", arg)
    info = {
        "@odata.type": "#Message.v1_2_0.Message",
        "MessageId": f"Base.1.22.{message_id}",
        "Message": text,
        "MessageArgs": list(args),
        "MessageSeverity": severity,
        "Resolution": resolution,
    }
    return {"error": {"code": info["MessageId"], "message": text, "@Message.ExtendedInfo": [info]}}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(
        payload, status, headers={**ODATA_HEADERS, **(headers or {})}, media_type=JSON_TYPE
    )


def error(
    status: int, message_id: str, *args: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(error_body(message_id, *args), status, headers)
