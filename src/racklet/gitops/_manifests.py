"""Manifest sets: files of YAML/JSON documents, parsed and validated before anything is applied.

Pure functions over bytes, shared by ``racklet apply -f`` and the GitSource reconciler, so a
manifest that the CLI rejects is rejected by GitOps with the same words. Reading files from
disk (:func:`read_paths`) is kept apart from validating them (:func:`load_manifests`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from racklet.api import API_VERSION, KINDS, InvalidObject, parse, to_dict
from racklet.gitops.errors import InvalidManifests
from racklet.limits import InputRejected, check_yaml

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
NOT_APPLICABLE = frozenset({"Event"})


class _Loader(yaml.SafeLoader):
    """YAML 1.2's booleans: only true/false. YAML 1.1 (PyYAML's default) reads ``power: Off``
    as the boolean false, a trap for every manifest that switches a unit off."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class ManifestDocument:
    """One validated document: where it came from and the object it declares.

    ``body`` is the wire form a client sends: apiVersion, kind, metadata (name, labels,
    annotations) and the spec with defaults filled in; never status or server-owned metadata.
    """

    source: str
    kind: str
    name: str
    body: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


def _yaml_problem(path: str, exc: yaml.YAMLError) -> str:
    # Where the broken construct began (an unclosed bracket or quote) says more than where the
    # parser gave up (often the end of the file); the problem's own place otherwise.
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    what = getattr(exc, "problem", None) or type(exc).__name__
    return f"{path}: {where}not valid YAML ({what})"


def _documents(path: str, raw: bytes) -> tuple[list[Any], list[str]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return [], [f"{path}: not UTF-8 text"]
    try:
        check_yaml(text, count_values=False)  # no aliases: a few lines must not expand to millions
        return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None], []
    except yaml.YAMLError as exc:
        return [], [_yaml_problem(path, exc)]
    except InputRejected as exc:
        return [], [f"{path}: {exc.message.removeprefix('body: ')}"]


def _describe(doc: Any) -> str:
    if isinstance(doc, dict):
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
        if isinstance(kind, str) and isinstance(name, str):
            return f" ({kind.lower()}/{name})"
    return ""


def _validate(doc: Any) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(doc, dict):
        raise InvalidObject(["an object (mapping) is required"])
    if doc.get("apiVersion") != API_VERSION:
        raise InvalidObject([f"apiVersion: must be {API_VERSION}, got {doc.get('apiVersion')!r}"])
    kind = doc.get("kind")
    if kind in NOT_APPLICABLE:
        raise InvalidObject([f"kind: {kind} is recorded by the controller, not applied"])
    obj = to_dict(parse(doc))
    meta = obj["metadata"]
    body: dict[str, Any] = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {
            "name": meta["name"],
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
        },
    }
    if "spec" in obj:
        body["spec"] = obj["spec"]
    return str(obj["kind"]), str(meta["name"]), body


def load_manifests(files: Mapping[str, bytes]) -> list[ManifestDocument]:
    """Every document of every file, validated; raise :class:`InvalidManifests` if any is bad.

    All problems are collected first (file, document number, object and field), so one run
    shows everything that is wrong and nothing is applied from a set with a bad member.
    """
    manifests: list[ManifestDocument] = []
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    for path in sorted(files):
        docs, found = _documents(path, files[path])
        problems += found
        for index, doc in enumerate(docs, start=1):
            where = f"{path}: document {index}{_describe(doc)}" if len(docs) > 1 else path
            try:
                kind, name, body = _validate(doc)
            except InvalidObject as exc:
                problems += [f"{where}: {p}" for p in exc.problems]
                continue
            if (kind, name) in seen:
                other = seen[kind, name]
                problems.append(f"{where}: {kind.lower()}/{name} is also declared in {other}")
                continue
            seen[kind, name] = where
            manifests.append(ManifestDocument(source=where, kind=kind, name=name, body=body))
    if problems:
        raise InvalidManifests(problems)
    return manifests


def read_paths(paths: Sequence[str]) -> dict[str, bytes]:
    """The files named on a command line: a file, a directory (recursively) or ``-`` (stdin)."""
    files: dict[str, bytes] = {}
    for given in paths:
        if given == "-":
            files["<stdin>"] = sys.stdin.buffer.read()
            continue
        path = Path(given)
        try:
            if path.is_dir():
                for child in sorted(path.rglob("*")):
                    hidden = any(p.startswith(".") for p in child.relative_to(path).parts)
                    if child.suffix in MANIFEST_SUFFIXES and child.is_file() and not hidden:
                        files[str(child)] = child.read_bytes()
            else:
                files[str(path)] = path.read_bytes()
        except OSError as exc:
            raise InvalidManifests([f"{given}: cannot read ({exc.strerror or exc})"]) from exc
    return files


def known_kinds() -> list[str]:
    return sorted(k for k in KINDS if k not in NOT_APPLICABLE)
