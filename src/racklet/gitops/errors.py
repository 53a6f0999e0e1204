"""Errors of the GitOps library.

::

    RackletError
    └── GitOpsError
        ├── SourceError        the repository, branch or path cannot be read (missing, not Git)
        ├── InvalidManifests   a manifest set does not parse or validate; names file and field
        └── ApplyError         the store refused a change (owned by another source, conflict)
"""

from __future__ import annotations

from racklet.errors import RackletError


class GitOpsError(RackletError):
    """Base of the GitOps errors."""


class SourceError(GitOpsError):
    """The Git repository, branch or path cannot be read."""


class InvalidManifests(GitOpsError):
    """One or more documents are invalid; ``problems`` holds one ``file: field: message`` each.

    The message is the first problem (and how many more), so it fits on one line.
    """

    def __init__(self, problems: list[str]) -> None:
        first = problems[0] if problems else "invalid manifests"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)
        self.problems = problems


class ApplyError(GitOpsError):
    """A change could not be written (another owner, a conflict that did not resolve)."""


class ApplyConflict(ApplyError):
    """An object changed between reading and writing it; read it again and retry."""
