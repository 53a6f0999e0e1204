"""``racklet init gitops DIR``: a Git repository holding a rack's manifests and a README.

Synchronous on purpose (it runs once, from the CLI, before any service). The repository is
laid out so that the GitSource that points at it lives outside the folder it applies:

    DIR/README.md            how a class uses it
    DIR/gitsource.yaml       the GitSource (apply it once with ``racklet apply -f``)
    DIR/rack/rack.yaml       the Rack
    DIR/rack/units/*.yaml    one ComputeUnit per file, so a change is a one-file diff

The Rack and ComputeUnits are built from the same API models, with the same labels and
defaults, as the objects ``racklet up`` declares, so the first sync of a fresh rack changes
nothing, and the BMC URLs (stable across restarts of ``racklet up``) stay right.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from racklet.api import (
    API_VERSION,
    RACK_LABEL,
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ObjectMeta,
    Rack,
    RackSpec,
)
from racklet.gitops._readme import README
from racklet.gitops.errors import SourceError


@dataclass(frozen=True)
class StarterUnit:
    name: str
    slot: int
    bmc_url: str


def _dump(obj: dict[str, object]) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def _manifest(obj: Rack | ComputeUnit) -> dict[str, object]:
    """What a person writes: identity, labels and spec; no server-set fields, no status."""
    metadata: dict[str, object] = {"name": obj.metadata.name}
    if obj.metadata.labels:
        metadata["labels"] = dict(obj.metadata.labels)
    return {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "metadata": metadata,
        "spec": obj.spec.model_dump(by_alias=True, mode="json"),
    }


def declared_unit(rack: str, unit: StarterUnit) -> ComputeUnit:
    """A unit as ``racklet up`` declares it: labelled with its rack, powered on."""
    return ComputeUnit(
        metadata=ObjectMeta(name=unit.name, labels={RACK_LABEL: rack}),
        spec=ComputeUnitSpec(slot=unit.slot, power="On", bmc=BmcRef(url=unit.bmc_url)),
    )


def starter_files(
    directory: Path,
    *,
    rack: str,
    psu_watts: float,
    units: list[StarterUnit],
    source: str = "rack",
) -> dict[str, str]:
    """The starter repository's files, by path inside it."""
    declared = Rack(metadata=ObjectMeta(name=rack), spec=RackSpec(psu_rated_watts=psu_watts))
    files = {"rack/rack.yaml": _dump(_manifest(declared))}
    for unit in units:
        files[f"rack/units/{unit.name}.yaml"] = _dump(_manifest(declared_unit(rack, unit)))
    files["gitsource.yaml"] = _dump(
        {
            "apiVersion": API_VERSION,
            "kind": "GitSource",
            "metadata": {"name": source},
            "spec": {
                "localPath": str(directory.resolve()),
                "branch": "main",
                "path": "rack",
                "interval": "1m",
                "prune": True,
                "suspend": False,
            },
        }
    )
    files["README.md"] = README.replace("{{DIR}}", str(directory)).replace("{{SOURCE}}", source)
    return files


def _git(directory: Path, *args: str) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        result = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
    except FileNotFoundError as exc:
        raise SourceError("the git command is not installed") from exc
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise SourceError(f"git {args[0]}: {lines[-1] if lines else 'failed'}")
    return result.stdout.strip()


def write_starter(directory: Path, files: dict[str, str]) -> str:
    """Create ``directory`` as a Git repository with ``files`` committed; the commit id.

    Refuses a directory that exists and is not empty, so nothing of the user's is touched.
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise SourceError(f"{directory} already exists and is not empty")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    except OSError as exc:
        raise SourceError(f"cannot write {directory}: {exc.strerror or exc}") from exc
    _git(directory, "init", "--quiet", "--initial-branch=main")
    identity: list[str] = []
    try:
        _git(directory, "config", "user.email")
    except SourceError:  # no identity configured: commit as Racklet rather than fail
        identity = ["-c", "user.name=Racklet", "-c", "user.email=racklet@localhost"]
    _git(directory, "add", "--all")
    _git(directory, *identity, "commit", "--quiet", "-m", "Racklet starter: the default rack")
    return _git(directory, "rev-parse", "HEAD")
