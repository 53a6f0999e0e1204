"""``racklet scale``: bad input is one line and exit 2, before any rack is asked."""

from __future__ import annotations

import pytest

from racklet.cli.main import main


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["microvmset/web", "--replicas", "-1"], "--replicas must be 0 to 256, got -1"),
        (["microvmset/web", "--replicas", "two"], "--replicas takes a whole number"),
        (["unit/unit-1", "--replicas", "1"], "only a microvmset scales, not a computeunit"),
        (["web", "--replicas", "1"], "expected KIND/NAME"),
    ],
)
def test_bad_scale_input_is_one_line(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scale", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err
