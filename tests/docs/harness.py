"""The docs-test harness: the shell walk-throughs in ``docs/`` run against a real rack.

Sybil finds the blocks (its Markdown lexers); this module is the glue it asks for: what a
``console``/``sh`` block means as commands, a reader's terminal to run them in (one ``bash``
per page, so ``export`` and ``cd`` carry from block to block as they would for a reader), the
comparison of shown and real output with the page's placeholders, and the racks a page's
front matter asks for. The convention pages follow is in ``docs/contributing-docs.md``.

It deliberately does not normalise anything the page did not mark: a port, a time or a reading
that changes must be written ``…`` in the page, so a reader sees exactly what is compared.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown import SkipParser
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, FencedCodeBlockLexer

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = "…"
CLONE = "/home/you/racklet"
"""How pages show the reader's clone: the harness writes its workspace's path so."""
SHELL_LANGUAGES = ("console", "sh", "bash", "shell")
SHARED_RACK_ARGS = ("--speed", "10")
"""The rack getting-started.md starts (``make up ARGS="--speed 10"``), shared by later pages."""
AHEAD_KINDS = ("none", "own")
"""Pages that do not touch the shared rack: they run ahead, beside the shared rack's pages."""
AHEAD_WORKERS = int(os.environ.get("DOCS_TEST_WORKERS", "2"))
"""How many such pages run at once besides the shared rack's page (0: every page in turn).
Their time is mostly waiting (a rack booting, ``racklet wait``), so even CI's 2 cores run
three pages at once faster than one after another (docs/benchmarks.md, issue 17). (An earlier
failure blamed on running ahead, peer-to-peer.md's units updating twice, had another cause:
the page did not wait for its own rack's first boot; fixed in the page.)"""
COMMAND_TIMEOUT = 180.0
START_TIMEOUT = 120.0
FRONT_MATTER = re.compile(r"\A---\n(?P<body>.*?)\n---\n", re.DOTALL)
RACK_KINDS = ("none", "starts", "shared", "own")
NEEDS = {
    "etcd": "etcd",
    "git": "git",
    "jq": "jq",
    "curl": "curl",
    "qemu": "qemu-system-x86_64",
    "prometheus": "prometheus",
}


class DocsError(AssertionError):
    """A page that breaks the convention (bad front matter, an unknown directive)."""


# -- what a page declares ------------------------------------------------------------------


@dataclass(frozen=True)
class FrontMatter:
    """The page's ``docs-test:`` block: which rack it needs and what else must be installed."""

    rack: str = "none"
    args: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()

    @classmethod
    def of(cls, text: str, path: str) -> FrontMatter | None:
        match = FRONT_MATTER.match(text)
        if match is None:
            return None
        data = yaml.safe_load(match["body"]) or {}
        spec = data.get("docs-test") if isinstance(data, dict) else None
        if spec is None:
            return None
        if not isinstance(spec, dict):
            raise DocsError(f"{path}: docs-test must be a mapping")
        unknown = set(spec) - {"rack", "args", "needs"}
        if unknown:
            raise DocsError(f"{path}: unknown docs-test keys {sorted(unknown)}")
        rack = str(spec.get("rack", "none"))
        if rack not in RACK_KINDS:
            raise DocsError(f"{path}: docs-test rack must be one of {RACK_KINDS}, got {rack!r}")
        needs = tuple(str(n) for n in spec.get("needs", ()))
        for need in needs:
            if need not in NEEDS:
                raise DocsError(f"{path}: unknown need {need!r} (known: {sorted(NEEDS)})")
        args = tuple(shlex.split(str(spec.get("args", ""))))
        if rack != "own" and args:
            raise DocsError(f"{path}: args only with rack: own")
        return cls(rack, args, needs)


WAIT = re.compile(r"^\s*\$ .*\b(racklet wait|until|sleep)\b", re.MULTILINE)


def waits_in(text: str) -> int:
    """How many of a page's commands wait for its rack (``racklet wait``, an ``until`` loop, a
    ``sleep``): the docs tests' time is mostly such waits, so it ranks pages by their length."""
    return len(WAIT.findall(text))


# -- what a block means ---------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    source: str
    expected: tuple[str, ...] | None
    """The output the page shows; None for an ``sh`` block, whose output is not shown."""
    line: int


HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_]\w*)\1")


def commands_of(language: str, text: str) -> list[Command]:
    """A ``console`` block's ``$ `` commands with the output shown under each (a trailing
    ``\\`` or an open here-document continues a command); every line of an ``sh`` block."""
    lines = text.splitlines()
    result: list[Command] = []
    index = 0
    console = language == "console"
    while index < len(lines):
        raw = lines[index]
        if console and not raw.startswith("$ "):
            if raw.strip():
                raise DocsError(f"console block line {index + 1}: output before any '$ ' command")
            index += 1
            continue
        if not console and (not raw.strip() or raw.lstrip().startswith("#")):
            index += 1
            continue
        start = index
        source = [raw[2:] if console else raw]
        index += 1
        while source[-1].endswith("\\") and index < len(lines):
            source.append(lines[index].removeprefix("> "))
            index += 1
        for _quote, delimiter in HEREDOC.findall("\n".join(source)):
            while index < len(lines) and lines[index] != delimiter:
                source.append(lines[index])
                index += 1
            if index < len(lines):
                source.append(lines[index])
                index += 1
        expected: list[str] | None = None
        if console:
            expected = []
            while index < len(lines) and not lines[index].startswith("$ "):
                expected.append(lines[index])
                index += 1
        result.append(
            Command("\n".join(source), tuple(expected) if expected is not None else None, start)
        )
    return result


def _normal(line: str) -> str:
    return " ".join(line.split())


def _line_pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in _normal(line).split(PLACEHOLDER)))


def output_matches(expected: Iterable[str], actual: str) -> bool:
    """Shown output against real output, line by line, runs of blanks counting as one: ``…``
    inside a line stands for any text, a line that is only ``…`` for any number of lines."""
    want = [_normal(line) for line in expected]
    got = [_normal(line) for line in actual.splitlines()]
    while want and not want[-1]:
        want.pop()
    while got and not got[-1]:
        got.pop()
    patterns = [None if line == PLACEHOLDER else _line_pattern(line) for line in want]

    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(patterns):
            ok = j == len(got)
        elif patterns[i] is None:
            ok = match(i + 1, j) or (j < len(got) and match(i, j + 1))
        else:
            pattern = patterns[i]
            assert pattern is not None
            ok = j < len(got) and pattern.fullmatch(got[j]) is not None and match(i + 1, j + 1)
        memo[(i, j)] = ok
        return ok

    return match(0, 0)


# -- a reader's terminal ---------------------------------------------------------------------


class Terminal:
    """One ``bash`` for one page: commands run in it one by one (stdin from /dev/null,
    stderr with stdout, as a reader sees them), so variables, ``cd`` and an activated venv
    carry from one block to the next. Background commands get their own session, so an
    interrupt reaches all their children as Ctrl-C would."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.scratch = cwd / ".racklet-docs-test"
        self.scratch.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
        )
        self.background: list[Background] = []
        self.run("set -a")  # variables reach background commands, as in the reader's shell

    def run(self, source: str, timeout: float = COMMAND_TIMEOUT) -> tuple[str, int]:
        """Run one command in the page's shell; its output and exit status."""
        assert self.process.stdin is not None and self.process.stdout is not None
        script = self.scratch / "command.sh"
        script.write_text(source + "\n")
        sentinel = f"__docs_test_{uuid.uuid4().hex}__"
        self.process.stdin.write(
            f"source {shlex.quote(str(script))} </dev/null 2>&1\n"
            # the status goes to the harness, and stays $? for the page's next command
            f"__docs_rc=$?; printf '%s %d\\n' {sentinel} $__docs_rc; (exit $__docs_rc)\n".encode()
        )
        self.process.stdin.flush()
        buffer = b""
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        marker = sentinel.encode()
        while marker not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DocsError(f"timed out after {timeout:.0f} s: {source}\n{buffer.decode()}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise DocsError(f"the page's shell exited during: {source}")
                buffer += chunk
        while b"\n" not in buffer.split(marker, 1)[1]:
            buffer += os.read(fd, 65536)
        before, after = buffer.split(marker, 1)
        return self.shown(before.decode(errors="replace")), int(after.split()[0])

    def shown(self, output: str) -> str:
        """Output as the page shows it: the clone's path written as :data:`CLONE`."""
        return output.replace(str(self.cwd), CLONE)

    def start(self, source: str) -> Background:
        """Start a command that keeps running (``racklet up``) as a reader would in another
        terminal, in this shell's directory and environment."""
        log = self.scratch / f"background-{len(self.background)}.log"
        # A shell starts & commands with SIGINT ignored; a reader's Ctrl-C reaches them.
        out, status = self.run(
            f"setsid env --default-signal=INT,QUIT bash -c {shlex.quote(source)}"
            f" >{shlex.quote(str(log))} 2>&1 &\necho $!"
        )
        if status != 0:
            raise DocsError(f"could not start {source!r}: {out}")
        job = Background(source, int(out.split()[-1]), log, self.cwd)
        self.background.append(job)
        return job

    def close(self) -> None:
        for job in self.background:
            job.stop()
        if self.process.poll() is None:
            with contextlib.suppress(DocsError, OSError):  # what the page left running with &
                self.run("kill $(jobs -p) 2>/dev/null; true", timeout=10)
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@dataclass
class Background:
    source: str
    pid: int
    log: Path
    cwd: Path

    def alive(self) -> bool:
        """Running, and not a zombie: the page's shell, not the harness, is its parent and
        may not have reaped it yet (Linux: the state field of /proc/PID/stat)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")

    def wait_for(self, expected: tuple[str, ...], timeout: float = START_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if output_matches(expected, self.output()):
                return True
            if not self.alive():
                return output_matches(expected, self.output())
            time.sleep(0.2)
        return False

    def output(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.replace(str(self.cwd), CLONE)

    def interrupt(self, timeout: float = 30.0) -> None:
        """Ctrl-C: SIGINT to the command's whole process group; then wait for it to end."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        if self.alive():
            self.interrupt()
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)


# -- workspaces and racks ------------------------------------------------------------------


def make_workspace(path: Path) -> Path:
    """A reader's clone after README's set-up: the repository's files (linked, read only by
    the pages) and a ``.venv`` whose parts link to the installed one, marked installed so
    ``make up`` does not reinstall. Whatever a page writes lands here, not in the repo, but
    for the clone's git-ignored download cache (``.cache``: workloads.md's kernel, fetched
    once for the pages and ``tests/vm`` alike, as a reader's clone keeps it)."""
    path.mkdir(parents=True, exist_ok=True)
    (REPO / ".cache").mkdir(exist_ok=True)
    for entry in REPO.iterdir():
        if entry.name in {".venv", ".racklet", ".git", "build", "dist"} or entry.name.endswith(
            "_cache"
        ):
            continue
        (path / entry.name).symlink_to(entry)
    venv = path / ".venv"
    venv.mkdir()
    for entry in (REPO / ".venv").iterdir():
        if entry.name != ".installed":
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()
    return path


def reader_env() -> dict[str, str]:
    """The environment of a new terminal: the test run's, less what would hide a page's
    missing set-up (an active venv, a config or token the page did not export)."""
    venv_bin = str(REPO / ".venv" / "bin")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RACKLET_", "PYTEST_", "VIRTUAL_ENV")) and k != "CI"
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)
    return env


@dataclass
class RackPool:
    """The racks of one docs-test run. The shared rack is the one getting-started.md starts;
    pages with ``rack: shared`` continue it in page order (and it is started with the same
    command if the page that starts it did not run or stopped it). Pages that need no shared
    rack may run ahead in worker threads (:meth:`run_ahead`)."""

    root: Path
    shared_dir: Path | None = None
    shared_jobs: list[Background] = field(default_factory=list)
    spare: list[Terminal] = field(default_factory=list)
    count: int = 0
    ahead: dict[Path, AheadRun] = field(default_factory=dict)
    executor: ThreadPoolExecutor | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def workspace(self) -> Path:
        with self.lock:
            self.count += 1
            count = self.count
        return make_workspace(self.root / f"page-{count}")

    def shared_workspace(self) -> Path:
        if self.shared_dir is None:
            self.shared_dir = self.workspace()
        return self.shared_dir

    def shared_running(self) -> bool:
        return any(job.alive() for job in self.shared_jobs)

    def ensure_shared(self) -> Path:
        cwd = self.shared_workspace()
        if not self.shared_running():
            self.shared_jobs = [start_rack(cwd, SHARED_RACK_ARGS, self.spare)]
        return cwd

    def stop_shared(self) -> None:
        for job in self.shared_jobs:
            job.stop()
        self.shared_jobs = []

    def run_ahead(self, paths: Iterable[Path], workers: int = AHEAD_WORKERS) -> None:
        """Start running these pages (none of them ``shared`` or ``starts``) in page order,
        ``workers`` at a time, while the shared rack's pages run in the test's thread. Each
        page has its own terminal, workspace and racks; its tests replay what it did."""
        if workers <= 0:
            return
        if self.executor is None:
            self.executor = ThreadPoolExecutor(workers, thread_name_prefix="docs-ahead")
        for path in paths:
            if path not in self.ahead:
                run = AheadRun(path, self)
                self.ahead[path] = run
                self.executor.submit(run.run)

    def close(self) -> None:
        for run in self.ahead.values():
            run.stopping = True
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        for job in self.shared_jobs:
            job.stop()
        for terminal in list(self.spare):
            terminal.close()


@dataclass
class AheadRun:
    """One page run in a worker thread: its examples evaluated in page order, as the test
    items would, each outcome kept (``None`` for a pass, else what it raised: a failure, a
    skip) for the item to replay when pytest reaches it."""

    path: Path
    pool: RackPool
    outcomes: list[BaseException | None] = field(default_factory=list)
    finished: bool = False
    stopping: bool = False
    broken: BaseException | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)

    def run(self) -> None:
        try:
            document = docs_sybil().parse(self.path)
            document.namespace["docs_racks"] = self.pool
            try:
                for example in document.examples():
                    self._evaluate(example)
            finally:
                teardown(document.namespace)
        except BaseException as error:  # the page's own failure, shown by its next test
            self.broken = error
        finally:
            with self.changed:
                self.finished = True
                self.changed.notify_all()

    def _evaluate(self, example: Example) -> None:
        outcome: BaseException | None = None
        try:
            if self.stopping:
                raise DocsError("the docs tests stopped before this example ran")
            example.evaluate()
        except BaseException as error:  # replayed by the test item, whatever it is
            outcome = error
        with self.changed:
            self.outcomes.append(outcome)
            self.changed.notify_all()

    def replay(self, index: int) -> None:
        """Wait for the page's example ``index`` and end as it ended."""
        with self.changed:
            while len(self.outcomes) <= index and not self.finished:
                self.changed.wait()
            if len(self.outcomes) <= index:
                raise DocsError(f"{self.path.name}: the page's run ended early") from self.broken
            outcome = self.outcomes[index]
        if outcome is not None:
            raise outcome


def start_rack(cwd: Path, args: Iterable[str], keep: list[Terminal]) -> Background:
    """``racklet up ARGS`` in a workspace, waited for until its banner is printed. A fresh
    rack whose recorded free port was taken by another process before it bound it (a busy CI
    machine, or another page's rack starting at the same moment) is made again with new
    ports, up to three times. (Python says "[Errno 98] ... Address already in use".)"""
    command = ".venv/bin/racklet up " + shlex.join(args)
    for _attempt in range(3):
        terminal = Terminal(cwd, reader_env())
        keep.append(terminal)
        fresh = not (cwd / ".racklet").exists()
        job = terminal.start(command)
        if job.wait_for(("racklet: … is up with …", PLACEHOLDER)):
            return job
        job.stop()
        if not (fresh and "address already in use" in job.output().lower()):
            break
        shutil.rmtree(cwd / ".racklet")
    raise DocsError(f"{command} did not come up:\n{job.output()}")


# -- one page -------------------------------------------------------------------------------


@dataclass
class Page:
    """What one page's examples share: its terminal, and the directive waiting for the next
    block."""

    front: FrontMatter
    terminal: Terminal
    pool: RackPool
    own_jobs: list[Background] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.front.rack == "starts":
            self.pool.shared_jobs.extend(j for j in self.terminal.background if j.alive())
            self.terminal.background = [j for j in self.terminal.background if not j.alive()]
        self.terminal.close()
        for job in self.own_jobs:
            job.stop()


def open_page(front: FrontMatter, pool: RackPool) -> Page:
    """Start the terminal the page begins in: for every page but the one that starts the
    rack, the terminal getting-started.md leaves (venv active, ``RACKLET_CONFIG`` exported,
    in the clone)."""
    for need in front.needs:
        if shutil.which(NEEDS[need]) is None:
            import pytest

            pytest.skip(f"the page needs {need} ({NEEDS[need]} is not installed)")
    own: list[Background] = []
    if front.rack == "starts":
        cwd = pool.shared_workspace()
    elif front.rack == "shared":
        cwd = pool.ensure_shared()
    else:
        cwd = pool.workspace()
        if front.rack == "own":
            own.append(start_rack(cwd, front.args, pool.spare))
    terminal = Terminal(cwd, reader_env())
    page = Page(front, terminal, pool, own)
    if front.rack != "starts":
        setup = "source .venv/bin/activate"
        if front.rack != "none":
            setup += "\nexport RACKLET_CONFIG=$PWD/.racklet/racklet.yaml"
        out, status = terminal.run(setup)
        if status != 0:
            raise DocsError(f"terminal set-up failed: {out}")
    return page


# -- sybil glue -----------------------------------------------------------------------------

DIRECTIVES = ("background", "interrupt", "benchmark")
BENCH_CHECK = "BENCH_CHECK_ARGUMENTS"
"""With it set, ``python -m bench NAME ARGS`` parses ARGS and stops (``bench/__main__.py``)."""
BENCH_COMMAND = re.compile(r"\bpython -m bench \w")


def _page(example: Example) -> Page:
    page = example.namespace.get("page")
    if not isinstance(page, Page):
        raise DocsError(
            example.namespace.get("page_error", "the page has no docs-test front matter")
        )
    return page


def evaluate_front_matter(example: Example) -> None:
    front: FrontMatter = example.parsed
    try:
        example.namespace["page"] = open_page(front, example.namespace["docs_racks"])
    except DocsError as error:
        example.namespace["page_error"] = f"the page's set-up failed: {error}"
        raise


def evaluate_directive(example: Example) -> None:
    page = _page(example)
    name = str(example.parsed).strip()
    if name == "interrupt":
        for job in page.terminal.background + page.pool.shared_jobs:
            job.interrupt()
        return
    page.pending.append(name)


def evaluate_block(example: Example) -> str | None:
    page = _page(example)
    _language, commands = example.parsed
    background = "background" in page.pending
    benchmark = "benchmark" in page.pending
    page.pending.clear()
    if benchmark:
        return _check_benchmarks(page, example, commands)
    for command in commands:
        where = f"line {example.line + 1 + command.line}: $ {command.source}"
        if BENCH_COMMAND.search(command.source):
            return (
                f"{where}\na benchmark runs for minutes: mark its block "
                "<!-- docs-test: benchmark --> (checked to parse, not run)"
            )
        if background:
            job = page.terminal.start(command.source)
            want = command.expected or (PLACEHOLDER,)
            if not job.wait_for(want):
                return f"{where}\nexpected (still not seen):\n{_show(want)}\ngot:\n{job.output()}"
            continue
        out, status = page.terminal.run(command.source)
        if command.expected is None or not _shows_output(command.expected):
            if status != 0:
                return f"{where}\nexited {status}:\n{out}"
            continue
        if not output_matches(command.expected, out):
            return f"{where}\nexpected:\n{_show(command.expected)}\ngot (exit {status}):\n{out}"
    return None


def _shows_output(expected: Iterable[str]) -> bool:
    """Whether the page shows what the command prints: a line other than ``…``. Output shown
    only as ``…`` (whatever it prints) is not an error shown on purpose: it must exit 0."""
    return any(line.strip() not in ("", PLACEHOLDER) for line in expected)


def _check_benchmarks(page: Page, example: Example, commands: list[Command]) -> str | None:
    """A benchmark's block: each command is run as written with :data:`BENCH_CHECK` set, so
    the benchmark checks its arguments and stops (a run takes minutes). Only benchmarks may
    be run so: any other command in the block is a mistake of the page."""
    for command in commands:
        where = f"line {example.line + 1 + command.line}: $ {command.source}"
        if not BENCH_COMMAND.search(command.source):
            raise DocsError(f"{where}\na benchmark block runs 'python -m bench NAME' only")
        out, status = page.terminal.run(
            f"export {BENCH_CHECK}=1\n{command.source}\n__docs_rc=$?; unset {BENCH_CHECK}"
            "; (exit $__docs_rc)"
        )
        if status != 0:
            return f"{where}\nits arguments do not parse (exit {status}):\n{out}"
    return None


def _show(lines: Iterable[str]) -> str:
    return "\n".join(f"  {line}" for line in lines)


class FrontMatterParser:
    def __call__(self, document: Document) -> Iterator[Region]:
        match = FRONT_MATTER.match(document.text)
        front = FrontMatter.of(document.text, document.path)
        if match is not None and front is not None:
            yield Region(0, match.end(), front, evaluate_front_matter)


class DirectiveParser:
    def __init__(self) -> None:
        self.lexer = DirectiveInHTMLCommentLexer(directive="docs-test", arguments=r"[\w-]+")

    def __call__(self, document: Document) -> Iterator[Region]:
        for region in self.lexer(document):
            name = str(region.lexemes["arguments"]).strip()
            if name not in DIRECTIVES:
                raise DocsError(f"{document.path}: unknown directive docs-test: {name}")
            yield Region(region.start, region.end, name, evaluate_directive)


class ShellBlockParser:
    def __init__(self) -> None:
        self.lexer = FencedCodeBlockLexer(
            language="|".join(SHELL_LANGUAGES),
            mapping={"language": "language", "source": "source"},
        )

    def __call__(self, document: Document) -> Iterator[Region]:
        for region in self.lexer(document):
            language = str(region.lexemes["language"])
            parsed = (language, commands_of(language, str(region.lexemes["source"])))
            yield Region(region.start, region.end, parsed, evaluate_block)


def teardown(namespace: dict[str, Any]) -> None:
    page = namespace.pop("page", None)
    if isinstance(page, Page):
        page.close()


def docs_sybil() -> Sybil:
    return Sybil(
        parsers=[FrontMatterParser(), DirectiveParser(), SkipParser(), ShellBlockParser()],
        patterns=["*.md"],
        teardown=teardown,
        fixtures=["docs_racks"],
    )


def reading_order(readme: Path = REPO / "README.md") -> list[Path]:
    """The pages in the order README's documentation table lists them (the order a reader
    follows, and the order the shared rack's state flows in)."""
    pages: list[Path] = []
    for name in re.findall(r"^\| \[[^\]]+\]\(docs/([^)]+\.md)\)", readme.read_text(), re.M):
        path = REPO / "docs" / name
        if path not in pages:
            pages.append(path)
    for path in sorted((REPO / "docs").glob("*.md")):
        if path not in pages:
            pages.append(path)
    return pages


def has_shell_blocks(path: Path) -> bool:
    return bool(re.search(rf"^```({'|'.join(SHELL_LANGUAGES)})\s*$", path.read_text(), re.M))


def census() -> tuple[int, int, int, list[tuple[str, int, int, bool]]]:
    """Shell commands per page: how many, how many of them only checked to parse (a
    ``benchmark`` block), and whether the docs tests take the page (front matter present).
    Returns (run, checked, total, rows)."""
    rows = []
    for path in reading_order():
        text = path.read_text()
        count = checked = 0
        for match in re.finditer(
            rf"^(<!-- docs-test: benchmark -->\n)?[ \t]*```({'|'.join(SHELL_LANGUAGES)})\n(.*?)"
            r"^[ \t]*```[ \t]*$",
            text,
            re.M | re.S,
        ):
            body = "\n".join(line.strip() for line in match[3].splitlines())
            with contextlib.suppress(DocsError):
                found = len(commands_of(match[2], body))
                count += found
                checked += found if match[1] else 0
        if count:
            rows.append((path.name, count, checked, FrontMatter.of(text, str(path)) is not None))
    run = sum(n - c for _, n, c, taken in rows if taken)
    checked = sum(c for _, _, c, taken in rows if taken)
    return run, checked, sum(n for _, n, _, _ in rows), rows


if __name__ == "__main__":  # .venv/bin/python -m tests.docs.harness: the census for benchmarks
    run, checked, total, rows = census()
    for name, count, parsed, taken in rows:
        how = "run" if taken else "not run"
        how += f" ({parsed} only checked to parse)" if parsed else ""
        print(f"{name:24} {count:4} {how}")
    print(f"commands run by the docs tests: {run} of {total}, {checked} more checked to parse")
