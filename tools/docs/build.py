"""Build the docs site (`make docs`): pinned Mermaid, MkDocs in strict mode, RFC PDFs.

Three steps, each failing the build with one clear line:
1. Mermaid: `npm pack` the version in tools/docs/mermaid.lock (once; cached under build/), check
   the tarball against the registry integrity written there, take its self-contained
   dist/mermaid.min.js. The site then loads nothing from a CDN.
2. `mkdocs build --strict`: a broken link, an unknown page or a link to a source file that no
   longer exists (tools/docs/hooks.py) is an error, not a warning.
3. Every RFC page is printed to PDF by headless Chromium (Debian's, driven by Playwright), after
   its diagrams have rendered, into <site>/rfcs/pdf/.

Usage: python tools/docs/build.py [--site-dir DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "docs-cache"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

DIAGRAMS_DRAWN = """() => !document.querySelector('pre.mermaid') &&
  [...document.querySelectorAll('div.mermaid')].every(d => d.getBoundingClientRect().height > 0)"""


class BuildError(Exception):
    """One line for the user: what failed and what to do."""


def _lock() -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in (ROOT / "tools" / "docs" / "mermaid.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
    return fields


def mermaid_js() -> Path:
    """The pinned Mermaid bundle, fetched and verified once."""
    lock = _lock()
    version, integrity = lock["version"], lock["integrity"]
    bundle = CACHE / f"mermaid-{version}.min.js"
    if bundle.is_file():
        return bundle
    CACHE.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm not found: install Debian's npm to fetch the pinned Mermaid")
    done = subprocess.run(
        [npm, "pack", f"mermaid@{version}", "--pack-destination", str(CACHE), "--silent"],
        capture_output=True,
        text=True,
        check=False,
    )
    tarball = CACHE / f"mermaid-{version}.tgz"
    if done.returncode != 0 or not tarball.is_file():
        raise BuildError(f"npm pack mermaid@{version} failed: {done.stderr.strip()[-300:]}")
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if digest != expected:
        tarball.unlink()
        raise BuildError(f"mermaid-{version}.tgz does not match the integrity in mermaid.lock")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/dist/mermaid.min.js")
        if member is None:
            raise BuildError(f"mermaid-{version}.tgz has no dist/mermaid.min.js")
        partial = bundle.with_suffix(".part")
        partial.write_bytes(member.read())
        partial.replace(bundle)
    tarball.unlink()
    return bundle


def build_site(site_dir: Path, bundle: Path) -> None:
    """MkDocs in strict mode; its output is echoed, its failure is ours."""
    env = dict(os.environ, RACKLET_MERMAID_JS=str(bundle), NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        problems = [ln for ln in done.stderr.splitlines() if "WARNING" in ln or "ERROR" in ln]
        first = problems[0] if problems else "see above"
        raise BuildError(f"mkdocs build --strict failed: {first}")


def chromium_path() -> str:
    found = os.environ.get("RACKLET_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise BuildError("chromium not found: apt-get install chromium (scripts/apt-packages.txt)")
    return found


def render_rfc_pdfs(site_dir: Path) -> list[Path]:
    """Print each RFC page once its diagrams have rendered; the print stylesheet drops the nav."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    pages = sorted((site_dir / "rfcs").glob("[0-9][0-9][0-9][0-9]-*.html"))
    if not pages:
        raise BuildError(f"no RFC pages under {site_dir / 'rfcs'}")
    out_dir = site_dir / "rfcs" / "pdf"
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            for html in pages:
                page.goto(html.as_uri(), wait_until="load")
                try:
                    # Material swaps each <pre class="mermaid"> for a drawn <div> (closed shadow)
                    page.wait_for_function(DIAGRAMS_DRAWN, timeout=30_000)
                except PlaywrightError as exc:
                    raise BuildError(f"{html.name}: diagrams did not render: {exc}") from exc
                pdf = out_dir / f"{html.stem}.pdf"
                page.pdf(path=str(pdf), format="A4", print_background=True)
                written.append(pdf)
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--site-dir", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--no-pdf", action="store_true", help="skip the RFC PDFs")
    args = parser.parse_args(argv)
    site_dir: Path = args.site_dir.resolve()
    try:
        bundle = mermaid_js()
        build_site(site_dir, bundle)
        pdfs = [] if args.no_pdf else render_rfc_pdfs(site_dir)
    except BuildError as exc:
        print(f"make docs: {exc}", file=sys.stderr)
        return 1
    print(f"site: {site_dir}  ({len(pdfs)} RFC PDFs in {site_dir / 'rfcs' / 'pdf'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
