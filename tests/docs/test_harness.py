"""The docs-test harness itself: what a block means, how shown output is compared, and that
a page gone stale fails (the reason the harness exists)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sybil.example import SybilFailure

from tests.docs.harness import (
    REPO,
    DocsError,
    FrontMatter,
    RackPool,
    commands_of,
    docs_sybil,
    has_shell_blocks,
    output_matches,
    reading_order,
    teardown,
)


def test_placeholders_stand_for_text_in_a_line_and_for_whole_lines() -> None:
    shown = ["API: https://127.0.0.1:…/", "…", "done in …s"]
    assert output_matches(shown, "API: https://127.0.0.1:4431/\na\nb\ndone in 3s\n")
    assert output_matches(shown, "API: https://127.0.0.1:4431/\ndone in 3s")
    assert not output_matches(shown, "API: http://127.0.0.1:4431/\ndone in 3s")
    assert not output_matches(shown, "API: https://127.0.0.1:4431/\ndone in 3s\nextra")


def test_blank_runs_count_as_one_so_tables_may_realign() -> None:
    assert output_matches(["unit-1   1   Running   …"], "unit-1 1      Running 2.85")
    assert not output_matches(["unit-1   1   Running"], "unit-1 1 Off")


def test_console_blocks_split_into_commands_with_their_output() -> None:
    text = (
        "$ export A=1\n"
        "$ curl -s \\\n"
        "    https://x | jq .\n"
        '"On"\n'
        "$ cat > f.yaml <<EOF\n"
        "kind: Rack\n"
        "EOF\n"
        "$ racklet apply -f f.yaml\n"
        "rack/rack-1 configured\n"
    )
    commands = commands_of("console", text)
    assert [c.source for c in commands] == [
        "export A=1",
        "curl -s \\\n    https://x | jq .",
        "cat > f.yaml <<EOF\nkind: Rack\nEOF",
        "racklet apply -f f.yaml",
    ]
    assert [c.expected for c in commands] == [(), ('"On"',), (), ("rack/rack-1 configured",)]
    assert [c.source for c in commands_of("sh", "# set up\nmake up\n\nracklet get units\n")] == [
        "make up",
        "racklet get units",
    ]


def test_front_matter_is_checked() -> None:
    front = FrontMatter.of("---\ndocs-test:\n  rack: own\n  args: --units 2\n---\n# T\n", "p")
    assert front == FrontMatter("own", ("--units", "2"), ())
    assert FrontMatter.of("# no front matter\n", "p") is None
    with pytest.raises(DocsError, match="rack must be one of"):
        FrontMatter.of("---\ndocs-test:\n  rack: big\n---\n", "p")
    with pytest.raises(DocsError, match="unknown need"):
        FrontMatter.of("---\ndocs-test:\n  needs: [kubernetes]\n---\n", "p")


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[RackPool]:
    racks = RackPool(tmp_path / "racks")
    racks.root.mkdir()
    try:
        yield racks
    finally:
        racks.close()


def run_page(path: Path, pool: RackPool) -> list[str]:
    """Evaluate a page as the docs tests do; the failures, in page order."""
    document = docs_sybil().parse(path)
    document.namespace["docs_racks"] = pool
    failures = []
    try:
        for example in document.examples():
            try:
                example.evaluate()
            except SybilFailure as failure:
                failures.append(str(failure))
    finally:
        teardown(document.namespace)
    return failures


PAGE = """---
docs-test:
  rack: none
---
# A page

```console
$ racklet up --units 40
racklet: error: argument --units: --units must be between 1 and 16, got 40 (see 'racklet up --help')
$ WHERE=$(mktemp -d)
$ racklet init gitops $WHERE/repo | tail -1
…
$ ls $WHERE/repo
README.md
gitsource.yaml
rack
```
"""


def test_a_page_that_is_right_passes(tmp_path: Path, pool: RackPool) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    assert run_page(page, pool) == []


@pytest.mark.parametrize(
    ("stale", "fresh"),
    [
        ("$ racklet init gitops $WHERE/repo | tail -1", "$ racklet initialise $WHERE/repo"),
        ("rack\n```", "racks\n```"),
        ("got 40 (see", "got 40 (try"),
    ],
    ids=["renamed-command", "changed-output", "changed-error"],
)
def test_a_stale_command_or_output_fails_the_page(
    tmp_path: Path, pool: RackPool, stale: str, fresh: str
) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE.replace(stale, fresh))
    failures = run_page(page, pool)
    assert len(failures) == 1
    assert "expected:" in failures[0] or "exited" in failures[0]


def test_variables_and_directory_carry_from_block_to_block(tmp_path: Path, pool: RackPool) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "---\ndocs-test:\n  rack: none\n---\n"
        "```console\n$ X=hello; cd docs\n```\n\ntext\n\n"
        "```console\n$ echo $X from $(basename $PWD)\nhello from docs\n```\n"
    )
    assert run_page(page, pool) == []


def test_output_shown_only_as_a_placeholder_still_needs_success(
    tmp_path: Path, pool: RackPool
) -> None:
    """``…`` under a command means "whatever it prints", not "an error on purpose": a
    misspelt command with its output elided fails the page (workloads.md's ``racklet describe
    vm/hello`` passed so, with a usage error)."""
    page = tmp_path / "page.md"
    page.write_text(
        "---\ndocs-test:\n  rack: none\n---\n"
        "```console\n$ echo fine\n…\n$ ls /nonexistent-docs-test\n…\n```\n"
    )
    failures = run_page(page, pool)
    assert len(failures) == 1
    assert "exited 2" in failures[0] and "/nonexistent-docs-test" in failures[0]


NOT_YET_RUN: set[str] = set()
"""Pages whose shell blocks the docs tests do not run yet (issue 17): a ratchet. Converting a
page (front matter, placeholders, output as it really is) takes it off this list; a new page
with shell blocks must come with its front matter."""


def test_every_page_with_shell_blocks_says_what_it_needs() -> None:
    """A page a reader runs must be run by the docs tests: it needs a docs-test front matter
    (docs/contributing-docs.md)."""
    missing = {
        path.name
        for path in reading_order()
        if has_shell_blocks(path) and FrontMatter.of(path.read_text(), str(path)) is None
    }
    assert missing == NOT_YET_RUN


def test_reading_order_follows_the_readme() -> None:
    order = [path.name for path in reading_order()]
    assert order[0] == "getting-started.md"
    assert set(order) == {path.name for path in (REPO / "docs").glob("*.md")}


def test_a_background_command_is_waited_for_then_interrupted(
    tmp_path: Path, pool: RackPool
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "---\ndocs-test:\n  rack: none\n---\n"
        "<!-- docs-test: background -->\n"
        "```console\n$ python -c 'import time; print(\"ready\", flush=True); time.sleep(600)'\n"
        "ready\n```\n\n"
        "<!-- docs-test: interrupt -->\n"
        "```console\n$ pgrep -f 'time.sleep(600)' || echo gone\ngone\n```\n"
    )
    assert run_page(page, pool) == []


def test_the_exit_status_of_a_command_is_the_next_commands_dollar_question_mark(
    tmp_path: Path, pool: RackPool
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "---\ndocs-test:\n  rack: none\n---\n"
        "```console\n$ racklet get toasters\nracklet: error: …\n$ echo $?\n2\n```\n"
    )
    assert run_page(page, pool) == []


BENCH_PAGE = """---
docs-test:
  rack: none
---
<!-- docs-test: benchmark -->
```sh
python -m bench rack_up --repeat 3 --speeds 1,10   # minutes, when really run
```
"""


def test_a_benchmark_outside_a_benchmark_block_fails_the_page(
    tmp_path: Path, pool: RackPool
) -> None:
    """An unmarked benchmark would run for minutes in the docs tests (benchmarks.md's
    microvm_reschedule block took 103 s so): the page must mark it."""
    page = tmp_path / "page.md"
    page.write_text(BENCH_PAGE.replace("<!-- docs-test: benchmark -->\n", ""))
    failures = run_page(page, pool)
    assert len(failures) == 1
    assert "mark its block <!-- docs-test: benchmark -->" in failures[0]


@pytest.mark.parametrize(
    ("stale", "fresh"),
    [(None, None), ("--repeat 3", "--repeats 3"), ("rack_up", "rack_upp")],
    ids=["as-is", "renamed-flag", "renamed-benchmark"],
)
def test_a_benchmark_block_is_checked_to_parse_not_run(
    tmp_path: Path, pool: RackPool, stale: str | None, fresh: str | None
) -> None:
    """Benchmarks take minutes: their blocks are parsed by the benchmark itself, so a flag
    renamed in ``bench/`` and not in the page fails the docs tests."""
    page = tmp_path / "page.md"
    page.write_text(BENCH_PAGE if stale is None else BENCH_PAGE.replace(stale, str(fresh)))
    failures = run_page(page, pool)
    if stale is None:
        assert failures == []
    else:
        assert len(failures) == 1
        assert "do not parse" in failures[0]


def test_a_page_run_ahead_fails_where_it_fails(tmp_path: Path, pool: RackPool) -> None:
    """A page that needs no shared rack runs in a worker thread; its tests replay what each
    example did, so a stale command still fails, at its own example."""
    page = tmp_path / "page.md"
    page.write_text(PAGE.replace("got 40 (see", "got 40 (try"))
    count = len(list(docs_sybil().parse(page).examples()))
    pool.run_ahead([page], workers=1)
    failed = []
    for index in range(count):
        try:
            pool.ahead[page].replay(index)
        except SybilFailure as failure:
            failed.append((index, str(failure)))
    assert [index for index, _ in failed] == [1]  # the front matter, then the block
    assert "got 40 (try" in failed[0][1]
