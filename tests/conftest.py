"""Suite-wide rule: under ``CI=true`` a skipped test fails the run.

A test that skips where a resource is missing (etcd, the DMTF schema release beside the
clone) would otherwise pass CI by never running. So when the environment variable ``CI`` is
``true`` (GitHub Actions and most CI services set it), every skip is turned into a failure
that names the skip's reason, unless CI is known not to provide what the test needs. That is
said in one of two ways, both explicit:

* the test (or its module, via ``pytestmark``) carries ``@pytest.mark.ci_may_skip("why")``;
* the skip's reason matches a pattern in :data:`CI_ALLOWED_SKIPS` (hardware CI runners do not
  have, e.g. KVM).

Expected failures (``xfail``) are not skips and are left alone. Resources the tests need are
found relative to the repository (e.g. ``tests/bmc/dmtf/``), so outside CI a skip is rare too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator

import pytest

CI_ALLOWED_SKIPS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bKVM\b"),  # hosted CI runners have no /dev/kvm
    re.compile(r"\bneeds real hardware\b"),  # a docs block for a real board (contributing-docs)
)
"""Skip reasons CI accepts: things a hosted CI runner cannot have."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ci_may_skip(reason): this test may skip under CI=true (say why CI cannot run it)",
    )


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _allowed(reason: str, node: pytest.Item | pytest.Collector | None) -> bool:
    if node is not None and node.get_closest_marker("ci_may_skip") is not None:
        return True
    return any(pattern.search(reason) for pattern in CI_ALLOWED_SKIPS)


def _fail_if_forbidden(
    report: pytest.TestReport | pytest.CollectReport, node: pytest.Item | pytest.Collector | None
) -> None:
    if not in_ci() or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if _allowed(reason, node):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true: {reason}\n"
        "CI must run this test: provide what it needs, or mark it "
        "@pytest.mark.ci_may_skip('why CI cannot') (see tests/conftest.py)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _fail_if_forbidden(report, item)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield  # a module that skips itself at import (allow_module_level=True)
    _fail_if_forbidden(report, collector)
    return report
