"""MkDocs hooks of Racklet's docs site (named in mkdocs.yml under `hooks:`).

Pages, and the RFCs above all, link to the code and the tests that hold them to their word
(`../src/racklet/...`, `../../tests/...`). MkDocs knows only the docs folder, so such a link is
an "unrecognised link" to it, and on a built site it would be dead. Each one is checked here
against the repository instead: a path that no longer exists fails the build (so a page cannot
keep pointing at code that was moved), and one that exists becomes a link into the source
browser named by `RACKLET_SOURCE_URL` (e.g. `https://github.com/<org>/racklet/blob/main`), or
stays as its text when none is set: a reader finds the path in their clone.

The site fetches nothing at run time: Mermaid, which Material would load from a CDN, is copied
into the site from the pinned tarball that tools/docs/build.py fetched and checked.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
MERMAID_ENV = "RACKLET_MERMAID_JS"
SOURCE_URL_ENV = "RACKLET_SOURCE_URL"


def _absolute(path: str | Path) -> Path:
    """Normalised but not resolved: a symlinked folder stays inside the tree that links it."""
    return Path(os.path.normpath(os.path.abspath(path)))


def _repo_root(config: Any) -> Path:
    return _absolute(config["config_file_path"]).parent


def _rewrite(match: re.Match[str], page_dir: Path, docs_dir: Path, root: Path, where: str) -> str:
    target = match.group("target")
    if _SCHEME.match(target) or target.startswith(("#", "/")):
        return match.group(0)
    path_part, _, anchor = target.partition("#")
    resolved = _absolute(page_dir / path_part)
    if resolved.is_relative_to(docs_dir) or not path_part:
        return match.group(0)  # a page or an asset of the site: MkDocs validates it
    if not resolved.is_relative_to(root):
        raise PluginError(f"{where}: link {target!r} leaves the repository")
    if not resolved.exists():
        raise PluginError(
            f"{where}: link {target!r} names {resolved.relative_to(root)}, "
            "which does not exist in the repository"
        )
    base = os.environ.get(SOURCE_URL_ENV, "").rstrip("/")
    text = match.group("text")
    if not base:
        return text
    url = f"{base}/{resolved.relative_to(root).as_posix()}" + (f"#{anchor}" if anchor else "")
    return f"[{text}]({url})"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Check and rewrite links that leave the docs folder for the repository."""
    docs_dir = _absolute(config["docs_dir"])
    root = _repo_root(config)
    page_dir = (docs_dir / page.file.src_path).parent
    out: list[str] = []
    in_fence = False
    for line in markdown.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence or "](" not in line:
            out.append(line)
            continue
        out.append(
            _LINK.sub(
                lambda m: _rewrite(m, page_dir, docs_dir, root, page.file.src_path),
                line,
            )
        )
    return "".join(out)


def on_post_build(config: Any) -> None:
    """Put the pinned Mermaid where mkdocs.yml's extra_javascript expects it."""
    source = os.environ.get(MERMAID_ENV)
    if not source or not Path(source).is_file():
        raise PluginError(
            f"Mermaid is missing ({MERMAID_ENV} unset or not a file): build the site with "
            "`make docs`, which fetches the pinned tarball first"
        )
    dest = Path(config["site_dir"]) / "assets" / "javascripts" / "mermaid.min.js"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
