"""Bounds on what a listener accepts from the network, and the one safe parser for bodies.

Every HTTP listener (the controller's API and machine listeners, each BMC, the RMC, the unit
agents) takes its input bounds from one :class:`Limits` object, and every JSON or YAML request
body goes through :func:`parse_json` or :func:`parse_yaml`. Small inputs must not cost big
work: size and nesting depth are checked before a parser runs (a deep document would recurse
until ``RecursionError``), YAML aliases are refused (a 700-byte alias bomb is ten million
leaves once anything walks it), and a non-finite number is refused because no Racklet field
means infinity and JSON cannot carry it back out. A refusal is an :class:`InputRejected`
carrying the HTTP status the listener answers with (400, 413 or 422); each listener renders
it in its own error shape (a Kubernetes ``Status``, a Redfish Base-registry error).

Deliberately not here: limits of the boot path (``racklet.boot.BootLimits``,
``BulkLimits``), which bound what a unit accepts from a server, not what a server accepts.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from racklet.errors import RackletError

__all__ = ["LIMITS", "InputRejected", "Limits", "check_yaml", "parse_json", "parse_yaml"]


@dataclass(frozen=True)
class Limits:
    """Every bound a listener puts on its clients (bytes, levels, seconds, connections)."""

    max_body_bytes: int = 1024 * 1024
    """Largest JSON body a resource API accepts (Redfish listeners use ``max_small_body``)."""
    max_small_body_bytes: int = 64 * 1024
    """Largest body of a small-request endpoint: Redfish, heartbeats, events."""
    max_yaml_bytes: int = 256 * 1024
    """Largest YAML body: YAML costs about fifty times JSON's time per byte to load."""
    max_depth: int = 32
    """Deepest nesting of objects and arrays; Racklet's deepest resource is about 6 levels."""
    max_values: int = 10_000
    """Most members and elements in one body (counted as commas outside strings): building
    and then validating 350,000 empty lists from 1 MB takes the loop a quarter second."""
    max_resource_version_digits: int = 19
    """A resource version is a store revision, a 63-bit integer."""
    header_timeout: float = 10.0
    """Seconds from connect (or from a request's first byte) to the end of its headers."""
    handshake_timeout: float = 10.0
    """Seconds a client has to finish the TLS handshake."""
    max_connections_per_source: int = 64
    """Open connections one client address may hold on one listener; more are refused."""


LIMITS = Limits()


class InputRejected(RackletError):
    """A request's input was refused before (or while) it was parsed.

    ``status`` is the HTTP status to answer: 413 too large, 422 well-formed but not
    acceptable (a non-finite number), 400 anything else (malformed, too deep, aliases).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_KEEP = b'"[]{},'
_NOT_KEPT = bytes(b for b in range(256) if b not in _KEEP)
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes


def _check_shape(raw: bytes, limits: Limits) -> None:
    """Refuse JSON nested deeper than ``max_depth``, or with more than ``max_values``
    values, without parsing it.

    Escaped backslashes and quotes are dropped (left to right, as JSON pairs them), so every
    quote left delimits a string; splitting on quotes and keeping the even parts keeps what
    lies outside strings, of which only brackets and commas are kept. The deepest point is the
    largest running sum of +1 per opener and -1 per closer. Every step runs in C (about
    35 ms for a 1 MB body of nothing but brackets, a few ms for real documents), and nothing
    recurses; malformed input is left to the parser.
    """
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_KEPT)
    outside = b"".join(unescaped.split(b'"')[::2])
    if outside.count(b",") >= limits.max_values:
        raise InputRejected(413, f"body: more than {limits.max_values} values")
    brackets = outside.replace(b",", b"")
    if not brackets:
        return
    max_depth = limits.max_depth
    if b"[" * (max_depth + 1) in brackets or b"{" * (max_depth + 1) in brackets:
        raise InputRejected(400, f"body: nested deeper than {max_depth} levels")
    steps = memoryview(brackets.translate(_STEPS)).cast("b")
    if max(itertools.accumulate(steps)) > max_depth:
        raise InputRejected(400, f"body: nested deeper than {max_depth} levels")


def _non_finite(text: str) -> float:
    raise InputRejected(422, f"body: {text} is not a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputRejected(422, f"body: {text[:40]} is not a finite number")
    return value


def parse_json(raw: bytes | str, *, max_bytes: int | None = None, limits: Limits = LIMITS) -> Any:
    """The JSON value in ``raw`` (``None`` if it is empty), or :class:`InputRejected`.

    Size and depth are checked first; ``NaN``, ``Infinity`` and numbers that overflow a
    double are a 422; anything else that is not JSON is a 400.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    limit = limits.max_body_bytes if max_bytes is None else max_bytes
    if len(data) > limit:
        raise InputRejected(413, f"the body is larger than {limit} bytes")
    if not data.strip():
        return None
    _check_shape(data, limits)
    try:  # UTF-8 only (RFC 8259): json would also guess UTF-16, which the depth check misreads
        return json.loads(
            data.decode("utf-8"), parse_float=_finite_float, parse_constant=_non_finite
        )
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, int digit limit too
        raise InputRejected(400, f"body: not JSON ({_first_line(exc)})") from exc


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """The safe loader, with YAML's extras that JSON cannot carry turned off.

    Timestamps stay strings (as Kubernetes' YAML reading keeps them), non-finite floats are
    refused, and so is every value JSON has no form for (binary, sets). Booleans are YAML
    1.2's, true and false only, as in GitOps manifests (``racklet.gitops``): YAML 1.1 reads
    ``power: Off`` as false.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _timestamp(loader: yaml.BaseLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


def _yaml_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    assert isinstance(node, yaml.ScalarNode)  # the resolver tags only scalars as floats
    value = loader.construct_yaml_float(node)
    if not math.isfinite(value):
        raise InputRejected(422, f"body: {node.value} is not a finite number")
    return value


def _refuse(loader: yaml.BaseLoader, node: yaml.Node) -> Any:
    raise InputRejected(400, f"body: YAML type {node.tag} has no JSON form")


def _mapping(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    for key_node, _ in node.value:
        if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":str")):
            raise InputRejected(400, f"body: mapping key {key_node.value!r} is not a string")
    return loader.construct_yaml_map(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_Loader.add_constructor("tag:yaml.org,2002:float", _yaml_float)
_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)


def check_yaml(raw: bytes | str, *, limits: Limits = LIMITS, count_values: bool = True) -> None:
    """Refuse aliases, deep nesting and (with ``count_values``) too many values from the
    event stream of ``raw`` (any number of documents), before anything is composed.

    :func:`parse_yaml` runs it; a reader of several documents with its own loader (GitOps
    manifests) runs it first. A stream that is not YAML raises ``yaml.YAMLError``.
    """
    text = raw.encode() if isinstance(raw, str) else raw
    depth, max_depth = 0, limits.max_depth
    for count, event in enumerate(yaml.parse(text, Loader=_Loader)):
        if count_values and count > 2 * limits.max_values:
            raise InputRejected(413, f"body: more than {limits.max_values} values")
        if isinstance(event, yaml.AliasEvent):
            raise InputRejected(400, "body: YAML aliases are not accepted")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > max_depth:
                raise InputRejected(400, f"body: nested deeper than {max_depth} levels")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def parse_yaml(raw: bytes | str, *, limits: Limits = LIMITS) -> Any:
    """The one YAML document in ``raw`` as JSON-compatible data, or :class:`InputRejected`.

    Aliases are refused outright (anchors alone are harmless); size and depth are checked
    before the document is built. Loading YAML is slow (about 1 s per MB): an async caller
    should run this in a thread.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > limits.max_yaml_bytes:
        raise InputRejected(413, f"the YAML body is larger than {limits.max_yaml_bytes} bytes")
    try:
        check_yaml(data, limits=limits)
        return yaml.load(data, Loader=_Loader)  # a safe loader; aliases were refused above
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise InputRejected(400, f"body: not YAML ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
