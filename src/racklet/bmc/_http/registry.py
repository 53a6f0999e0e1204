"""Redfish error bodies built from the DMTF Base message registry (Base.1.22.1).

Only the messages the service uses are listed (plus a few of the Update and TaskEvent
registries, for firmware updates); their text, severity and resolution are the registry's.
:class:`RedfishErrorReply` is raised by handlers and turned into a response in one place
(``_app``), so no handler builds error JSON by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REGISTRY = "Base.1.22"


@dataclass(frozen=True)
class _Message:
    text: str
    severity: str
    resolution: str


_BASE: dict[str, _Message] = {
    "ResourceNotFound": _Message(
        "The requested resource of type %1 named '%2' was not found.",
        "Critical",
        "Provide a valid resource identifier and resubmit the request.",
    ),
    "OperationNotAllowed": _Message(
        "The HTTP method is not allowed on this resource.", "Critical", "None."
    ),
    "MalformedJSON": _Message(
        "The request body submitted was malformed JSON and could not be parsed by the "
        "receiving service.",
        "Critical",
        "Ensure that the request body is valid JSON and resubmit the request.",
    ),
    "ActionParameterValueNotInList": _Message(
        "The value '%1' for the parameter %2 in the action %3 is not in the list of "
        "acceptable values.",
        "Warning",
        "Choose a value from the enumeration list that the implementation can support and "
        "resubmit the request if the operation failed.",
    ),
    "ActionParameterMissing": _Message(
        "The action %1 requires the parameter %2 to be present in the request body.",
        "Critical",
        "Supply the action with the required parameter in the request body when the request "
        "is resubmitted.",
    ),
    "ActionParameterUnknown": _Message(
        "The action %1 was submitted with the invalid parameter %2.",
        "Warning",
        "Correct the invalid action parameter and resubmit the request if the operation failed.",
    ),
    "ActionParameterValueError": _Message(
        "The value for the parameter %1 in the action %2 is invalid.",
        "Warning",
        "Correct the value for the parameter in the request body and resubmit the request if "
        "the operation failed.",
    ),
    "ActionParameterValueTypeError": _Message(
        "The value '%1' for the parameter %2 in the action %3 is not a type that the "
        "parameter can accept.",
        "Warning",
        "Correct the value for the parameter in the request body and resubmit the request if "
        "the operation failed.",
    ),
    "PropertyUnknown": _Message(
        "The property %1 is not in the list of valid properties for the resource.",
        "Warning",
        "Remove the unknown property from the request body and resubmit the request if the "
        "operation failed.",
    ),
    "PropertyNotWritable": _Message(
        "The property %1 is a read-only property and cannot be assigned a value.",
        "Warning",
        "Remove the property from the request body and resubmit the request if the operation "
        "failed.",
    ),
    "PropertyValueNotInList": _Message(
        "The value '%1' for the property %2 is not in the list of acceptable values.",
        "Warning",
        "Choose a value from the enumeration list that the implementation can support and "
        "resubmit the request if the operation failed.",
    ),
    "PropertyValueTypeError": _Message(
        "The value '%1' for the property %2 is not a type that the property can accept.",
        "Warning",
        "Correct the value for the property in the request body and resubmit the request if "
        "the operation failed.",
    ),
    "PropertyValueOutOfRange": _Message(
        "The value '%1' for the property %2 is not in the supported range of acceptable values.",
        "Warning",
        "Correct the value for the property in the request body and resubmit the request if "
        "the operation failed.",
    ),
    "PropertyMissing": _Message(
        "The property %1 is a required property and must be included in the request.",
        "Warning",
        "Ensure that the property is in the request body and has a valid value and resubmit "
        "the request if the operation failed.",
    ),
    "QueryParameterValueTypeError": _Message(
        "The value '%1' for the query parameter %2 is not a type that the parameter can accept.",
        "Warning",
        "Correct the value for the query parameter in the request and resubmit the request "
        "if the operation failed.",
    ),
    "QueryParameterOutOfRange": _Message(
        "The value '%1' for the query parameter %2 is out of range %3.",
        "Warning",
        "Reduce the value for the query parameter to a value that is within range, such as a "
        "start or count value that is within bounds of the number of resources in a "
        "collection or a page number that is within the range of valid pages.",
    ),
    "QueryNotSupported": _Message(
        "Querying is not supported by the implementation.",
        "Warning",
        "Remove the query parameters and resubmit the request if the operation failed.",
    ),
    "NoValidSession": _Message(
        "There is no valid session established with the implementation.",
        "Critical",
        "Establish a session before attempting any operations.",
    ),
    "InsufficientPrivilege": _Message(
        "There are insufficient privileges for the account or credentials associated with "
        "the current session to perform the requested operation.",
        "Critical",
        "Either abandon the operation or change the associated access rights and resubmit "
        "the request if the operation failed.",
    ),
    "InternalError": _Message(
        "The request failed due to an internal service error.  The service is still operational.",
        "Critical",
        "Resubmit the request.  If the problem persists, consider resetting the service.",
    ),
    "PreconditionFailed": _Message(
        "The ETag supplied did not match the ETag required to change this resource.",
        "Critical",
        "Try the operation again using the appropriate ETag.",
    ),
    "HeaderInvalid": _Message(
        "Header '%1' is invalid.",
        "Critical",
        "Resubmit the request with a valid request header.",
    ),
    "ResourceAlreadyExists": _Message(
        "The requested resource of type %1 with the property %2 with the value '%3' already "
        "exists.",
        "Critical",
        "Do not repeat the create operation as the resource was already created.",
    ),
    "CreateFailedMissingReqProperties": _Message(
        "The create operation failed because the required property %1 was missing from the "
        "request.",
        "Critical",
        "Correct the body to include the required property with a valid value and resubmit the"
        " request if the operation failed.",
    ),
    "PropertyValueFormatError": _Message(
        "The value '%1' for the property %2 is not a format that the property can accept.",
        "Warning",
        "Correct the value for the property in the request body and resubmit the request if "
        "the operation failed.",
    ),
    "PayloadTooLarge": _Message(
        "The supplied payload exceeds the maximum size supported by the service.",
        "Critical",
        "Check that the supplied payload is correct and supported by this service.",
    ),
    "ActionNotSupported": _Message(
        "The action %1 is not supported by the resource.",
        "Critical",
        "Check the Actions property in the resource for the supported actions.",
    ),
    "ResourceInUse": _Message(
        "The change to the requested resource failed because the resource is in use or in "
        "transition.",
        "Warning",
        "Remove the condition and resubmit the request if the operation failed.",
    ),
    "PropertyValueIncorrect": _Message(
        "The property '%1' with the requested value of '%2' could not be written because the "
        "value is not acceptable for the property.",
        "Warning",
        "None.",
    ),
    "ResourceCannotBeDeleted": _Message(
        "The delete request failed because the resource requested cannot be deleted.",
        "Critical",
        "Do not attempt to delete a non-deletable resource.",
    ),
    "ServiceTemporarilyUnavailable": _Message(
        "The service is temporarily unavailable.  Retry in %1 seconds.",
        "Critical",
        "Wait for the indicated retry duration and retry the operation.",
    ),
    "NoOperation": _Message(
        "The request body submitted contain no data to act upon and no changes to the resource"
        " took place.",
        "Warning",
        "Add properties in the JSON object and resubmit the request.",
    ),
    "Created": _Message(
        "The resource was created successfully.",
        "OK",
        "None.",
    ),
    "OperationFailed": _Message(
        "An error occurred internal to the service as part of the overall request.  Partial "
        "results may have been returned.",
        "Warning",
        "Resubmit the request.  If the problem persists, consider resetting the service or "
        "provider.",
    ),
    "Success": _Message("The request completed successfully.", "OK", "None."),
    "MissingOrMalformedPart": _Message(
        "The multipart request contains malformed parts or is missing required parts.",
        "Critical",
        "Add any missing required parts or correct the malformed parts and resubmit the request.",
    ),
    "UnrecognizedRequestBody": _Message(
        "The service detected a malformed request body that it was unable to interpret.",
        "Warning",
        "Correct the request body and resubmit the request if it failed.",
    ),
}

# Other DMTF registries, keyed ``Prefix.Key`` (e.g. ``Update.VerificationFailed``): the
# messages of long actions (firmware updates and the tasks that carry them).
_OTHERS: dict[str, tuple[str, dict[str, _Message]]] = {
    "Update": (
        "Update.1.3",
        {
            "VerificationFailed": _Message(
                "Verification of image '%1' at '%2' failed.", "Critical", "None."
            ),
            "TargetDetermined": _Message(
                "The target device '%1' will be updated with image '%2'.", "OK", "None."
            ),
            "UpdateSuccessful": _Message(
                "Device '%1' successfully updated with image '%2'.", "OK", "None."
            ),
            "ApplyFailed": _Message(
                "Installation of image '%1' to '%2' failed.", "Critical", "None."
            ),
            "UpdateInProgress": _Message("An update is in progress.", "OK", "None."),
        },
    ),
    "TaskEvent": (
        "TaskEvent.1.0",
        {
            "TaskStarted": _Message("The task with Id '%1' has started.", "OK", "None."),
            "TaskCompletedOK": _Message("The task with Id '%1' has completed.", "OK", "None."),
            "TaskAborted": _Message(
                "The task with Id '%1' has completed with errors.", "Critical", "None."
            ),
        },
    ),
}


RACKLET = "Racklet.1.0"
"""Racklet's own registry (``Racklet.1.0.0``), published at ``/redfish/v1/Registries``."""
RACKLET_VERSION = "1.0.0"
_RACKLET: dict[str, _Message] = {
    "ConsoleLine": _Message("%1", "OK", "None."),
    "BmcStarted": _Message("The BMC of '%1' started with firmware '%2'.", "OK", "None."),
    "ResetRequested": _Message("ResetType %2 of '%1' requested by %3.", "OK", "None."),
}
_RACKLET_DESCRIPTION = {
    "ConsoleLine": "One line the unit printed on its serial console (the argument, as "
    "printed, decoded as UTF-8 with replacement).",
    "BmcStarted": "The BMC service started (at power-up, after its own reset or a firmware "
    "update): the unit it manages and the firmware version it runs.",
    "ResetRequested": "A ComputerSystem.Reset was asked for: the unit, the ResetType and who "
    "asked (an account, or the SPIFFE ID of a client certificate).",
}
_OTHERS["Racklet"] = (RACKLET, _RACKLET)


def racklet_registry() -> dict[str, Any]:
    """The Racklet registry as a MessageRegistry document (what its ``Location`` serves)."""
    return {
        "@odata.type": "#MessageRegistry.v1_6_0.MessageRegistry",
        "Id": f"Racklet.{RACKLET_VERSION}",
        "Name": "Racklet Message Registry",
        "Language": "en",
        "Description": "Messages of Racklet's BMC and RMC that no DMTF registry covers.",
        "RegistryPrefix": "Racklet",
        "RegistryVersion": RACKLET_VERSION,
        "OwningEntity": "Racklet",
        "Messages": {
            name: {
                "Description": _RACKLET_DESCRIPTION[name],
                "Message": entry.text,
                "MessageSeverity": entry.severity,
                "NumberOfArgs": entry.text.count("%"),
                "ParamTypes": ["string"] * entry.text.count("%"),
                "Resolution": entry.resolution,
            }
            for name, entry in _RACKLET.items()
        },
    }


def message_id(key: str) -> str:
    """The full ``MessageId`` of ``Prefix.Key`` (or a Base key)."""
    return _lookup(key)[0]


def _lookup(key: str) -> tuple[str, _Message]:
    """The message id and entry of ``key`` (a Base key, or ``Prefix.Key`` of another)."""
    prefix, dot, name = key.partition(".")
    if dot:
        registry, entries = _OTHERS[prefix]
        return f"{registry}.{name}", entries[name]
    return f"{REGISTRY}.{key}", _BASE[key]


def message(key: str, *args: object, resolution: str | None = None) -> dict[str, Any]:
    """One ``Message`` object (Message.v1_3_0) for a Base registry message.

    ``resolution`` replaces the registry's generic one with a specific hint, as the Message
    schema recommends (e.g. naming the acceptable values).
    """
    message_id, entry = _lookup(key)
    text = entry.text
    # Replace from the highest index down so %1 never eats the prefix of %10.
    for index in range(len(args), 0, -1):
        text = text.replace(f"%{index}", str(args[index - 1]))
    body: dict[str, Any] = {
        "@odata.type": "#Message.v1_3_0.Message",
        "MessageId": message_id,
        "Message": text,
        "MessageSeverity": entry.severity,
        "Resolution": resolution or entry.resolution,
    }
    if args:
        body["MessageArgs"] = [str(arg) for arg in args]
    return body


class RedfishErrorReply(Exception):
    """An HTTP error answered with a Redfish error body (raise it from any handler)."""

    def __init__(
        self,
        status: int,
        key: str,
        *args: object,
        headers: dict[str, str] | None = None,
        resolution: str | None = None,
    ) -> None:
        self.status = status
        self.info = [message(key, *args, resolution=resolution)]
        self.headers = headers or {}
        super().__init__(self.info[0]["Message"])

    def body(self) -> dict[str, Any]:
        first = self.info[0]
        return {
            "error": {
                "code": first["MessageId"],
                "message": first["Message"],
                "@Message.ExtendedInfo": self.info,
            }
        }
