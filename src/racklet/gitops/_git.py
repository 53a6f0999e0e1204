"""Reading commits from a Git repository with the ``git`` command, never touching a work tree.

A local repository is read in place (objects only: uncommitted edits are invisible, exactly as
they should be); a URL is mirrored into a bare cache directory and fetched on each sync. Every
call is an asyncio subprocess, so the controller's event loop never blocks on Git.

What this module does not do: decide what a commit means (that is the reconciler), or
authenticate to remote hosts (use a URL the controller's user can already fetch).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from racklet.gitops._manifests import MANIFEST_SUFFIXES
from racklet.gitops.errors import SourceError

_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
_TIMEOUT = 60.0
_MAX_FILE = 1 << 20  # a manifest larger than 1 MiB is a mistake, not a rack


@dataclass(frozen=True)
class Location:
    """Where a GitSource's repository is: a local path or a URL, and which branch and folder."""

    local_path: str | None
    url: str | None
    branch: str = "main"
    path: str = "."

    @property
    def display(self) -> str:
        return self.local_path or self.url or "?"


async def git(*args: str, cwd: str | None = None, stdin: bytes | None = None) -> bytes:
    """Run ``git ARGS``; its stdout, or :class:`SourceError` with git's own first line."""
    try:
        process = await asyncio.create_subprocess_exec(
            "git",
            "-c",
            "safe.directory=*",
            *args,
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **_ENV},
        )
    except FileNotFoundError as exc:
        raise SourceError("the git command is not installed") from exc
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races
        # with git's exit, and the caller's stop() then waits forever.
        async with asyncio.timeout(_TIMEOUT):
            out, err = await process.communicate(stdin)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise SourceError(f"git {args[0]} took longer than {_TIMEOUT:g} s") from exc
    except asyncio.CancelledError:
        # Reap git before the loop goes: an orphaned transport fails in __del__ later.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise SourceError(lines[-1] if lines else f"git {args[0]} failed ({process.returncode})")
    return out


class Repository:
    """One GitSource's view of its repository: resolve the branch, read a commit's manifests."""

    def __init__(self, location: Location, cache_dir: Path | None = None) -> None:
        self.location = location
        self._cache_dir = cache_dir

    def _git_dir(self) -> str:
        if self.location.local_path is not None:
            path = Path(self.location.local_path)
            if not path.is_dir():
                raise SourceError(f"repository {path} does not exist")
            return str(path)
        if self._cache_dir is None:
            raise SourceError("a URL source needs a cache directory")
        digest = hashlib.sha256((self.location.url or "").encode()).hexdigest()[:16]
        return str(self._cache_dir / digest)

    async def fetch(self) -> str:
        """The commit the branch points at now (fetching first for a URL)."""
        where, branch = self._git_dir(), self.location.branch
        if self.location.url is not None:
            await self._mirror(where, branch)
        try:
            out = await git(
                "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", cwd=where
            )
        except SourceError as exc:
            if await self._is_repository(where):
                raise SourceError(
                    f"branch {branch!r} not found in {self.location.display}"
                ) from exc
            raise SourceError(f"{self.location.display} is not a Git repository") from exc
        return out.decode().strip()

    async def _is_repository(self, where: str) -> bool:
        try:
            await git("rev-parse", "--git-dir", cwd=where)
        except SourceError:
            return False
        return True

    async def _mirror(self, where: str, branch: str) -> None:
        url = self.location.url or ""
        if not _is_bare_repository(where):
            await git("init", "--bare", "--quiet", where)
        refspec = f"+refs/heads/{branch}:refs/heads/{branch}"
        try:
            await git("fetch", "--quiet", "--no-tags", "--depth", "1", url, refspec, cwd=where)
        except SourceError as exc:
            raise SourceError(f"cannot fetch branch {branch!r} from {url}: {exc}") from exc

    async def read(self, commit: str) -> dict[str, bytes]:
        """The manifest files under ``path`` at ``commit``, keyed by path in the repository."""
        where = self._git_dir()
        folder = PurePosixPath(self.location.path.strip("/") or ".")
        spec = [] if str(folder) == "." else ["--", f"{folder}/"]
        listing = await git("ls-tree", "-r", "-z", "--full-tree", "-l", commit, *spec, cwd=where)
        wanted: list[tuple[str, str]] = []
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, name = entry.decode().partition("\t")
            _mode, kind, sha, size = meta.split()
            if kind != "blob" or not name.endswith(MANIFEST_SUFFIXES):
                continue
            if any(part.startswith(".") for part in PurePosixPath(name).parts):
                continue
            if int(size) > _MAX_FILE:
                raise SourceError(f"{name} is larger than {_MAX_FILE} bytes")
            wanted.append((name, sha))
        if str(folder) != "." and not wanted and not await self._has_folder(where, commit, folder):
            raise SourceError(f"path {folder} not found at {commit[:12]}")
        if not wanted:
            return {}
        batch = await git(
            "cat-file", "--batch", cwd=where, stdin="".join(f"{s}\n" for _, s in wanted).encode()
        )
        return dict(zip((n for n, _ in wanted), _split_batch(batch), strict=True))

    async def _has_folder(self, where: str, commit: str, folder: PurePosixPath) -> bool:
        try:
            await git("rev-parse", "--verify", "--quiet", f"{commit}:{folder}", cwd=where)
        except SourceError:
            return False
        return True


def fingerprint(location: Location) -> tuple[int, ...] | None:
    """Cheap change detector for a local repository: the ref files' stat, no subprocess.

    A commit, a merge, a reset or ``git pack-refs`` rewrites one of these files. ``None`` for
    URL sources (they are fetched on their interval).
    """
    if location.local_path is None:
        return None
    root = Path(location.local_path)
    git_dir = root / ".git" if (root / ".git").is_dir() else root
    out: list[int] = []
    for name in ("HEAD", "packed-refs", f"refs/heads/{location.branch}"):
        try:
            st = os.stat(git_dir / name)
        except OSError:
            out += [0, 0, 0]
            continue
        out += [st.st_mtime_ns, st.st_size, st.st_ino]
    return tuple(out)


def _is_bare_repository(where: str) -> bool:
    return Path(where, "HEAD").is_file()


def _split_batch(batch: bytes) -> list[bytes]:
    """Split ``git cat-file --batch`` output: ``<sha> <type> <size>\\n<content>\\n`` each."""
    out: list[bytes] = []
    at = 0
    while at < len(batch):
        end = batch.index(b"\n", at)
        header = batch[at:end].split()
        if len(header) != 3:
            raise SourceError(f"unexpected git cat-file output: {batch[at:end][:80]!r}")
        size = int(header[2])
        out.append(batch[end + 1 : end + 1 + size])
        at = end + 1 + size + 1
    return out
