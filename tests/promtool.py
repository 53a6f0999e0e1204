"""Check a ``/metrics`` endpoint the way Prometheus' own tools do, in both formats.

``promtool check metrics`` (Debian's ``prometheus``) lints the Prometheus text format 0.0.4:
that exposition must pass with no finding at all. The OpenMetrics exposition must parse with
prometheus_client's strict OpenMetrics parser, and promtool must find no error in it; promtool's
linter reads OpenMetrics through its 0.0.4 parser, which does not join a counter's ``_total``
or a counter's, histogram's or summary's ``_created`` samples to their family (OpenMetrics puts
HELP on the family name), so it reports exactly those as "no help text", and nothing else is
allowed.
"""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from racklet.metrics import OPENMETRICS

TEXT = "text/plain; version=0.0.4; charset=utf-8"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing (apt-get install prometheus)"
)


def promtool(text: str) -> tuple[int, list[str]]:
    """``promtool check metrics`` on ``text``: its exit code and its findings."""
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    lines = (done.stdout + done.stderr).decode().splitlines()
    return done.returncode, [line for line in lines if line.strip()]


async def check_both_formats(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    """Scrape ``url`` in both formats, assert each is clean; the two bodies by format."""
    text = await client.get(url, headers={"Accept": "text/plain"})
    assert text.status_code == 200
    assert text.headers["content-type"] == TEXT
    code, findings = promtool(text.text)
    assert (code, findings) == (0, []), text.text

    om = await client.get(url, headers={"Accept": OPENMETRICS})
    assert om.status_code == 200
    assert om.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    families = list(text_string_to_metric_families(om.text))  # type: ignore[no-untyped-call]
    counters = {f.name for f in families if f.type == "counter"}
    created = {f.name for f in families if f.type in ("counter", "histogram", "summary")}
    code, findings = promtool(om.text)
    assert code in (0, 3), findings  # 3: lint findings only, no parse error
    for finding in findings:
        name, _, problem = finding.partition(" ")
        assert problem == "no help text", (finding, om.text)
        if name.endswith("_total"):
            assert name.removesuffix("_total") in counters, (finding, om.text)
        else:
            assert name.removesuffix("_created") in created, (finding, om.text)
    return {"text": text.text, "openmetrics": om.text}
