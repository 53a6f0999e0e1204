"""The shipped recording rules turn a sped-up twin's energy counters back into watts.

A 2.85 W unit on a twin at ``--speed 10`` adds 28.5 J of its own clock every wall second;
``rate()`` sees 28.5 J/s, and the rule divides by the BMC's ``racklet_twin_speed``. Checked
with ``promtool test rules`` (Prometheus' own rule evaluator) on synthetic scrapes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.promtool import PROMTOOL, needs_promtool

UNIT_RULE, RACK_RULE = "racklet_unit:power_watts:rate1m", "racklet_rack:power_watts:rate1m"
ONE, TWO = 'instance="bmc-1",unit="unit-1"', 'instance="bmc-2",unit="unit-2"'
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "racklet.rules.yml"


@needs_promtool
def test_rules_give_watts_at_any_speed(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    series = [
        # scraped every 15 s for 5 minutes: 15 s x 28.5 J/s = 427.5 J a scrape (speed 10)
        {
            "series": 'racklet_unit_energy_joules_total{instance="bmc-1",unit="unit-1"}',
            "values": "1000+427.5x20",
        },
        {"series": 'racklet_twin_speed{instance="bmc-1",unit="unit-1"}', "values": "10x20"},
        # a real board (speed 1) drawing 6.4 W
        {
            "series": 'racklet_unit_energy_joules_total{instance="bmc-2",unit="unit-2"}',
            "values": "0+96x20",
        },
        {"series": 'racklet_twin_speed{instance="bmc-2",unit="unit-2"}', "values": "1x20"},
    ]
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": "racklet_unit:power_watts:rate1m",
                        "eval_time": "4m",
                        "exp_samples": [
                            {
                                "labels": f"{UNIT_RULE}{{{ONE}}}",
                                "value": 2.85,
                            },
                            {
                                "labels": f"{UNIT_RULE}{{{TWO}}}",
                                "value": 6.4,
                            },
                        ],
                    },
                    {
                        "expr": "racklet_rack:power_watts:rate1m",
                        "eval_time": "4m",
                        "exp_samples": [{"labels": RACK_RULE, "value": 9.25}],
                    },
                ],
            }
        ],
    }
    spec = tmp_path / "rules_test.yml"
    spec.write_text(yaml.safe_dump(tests))
    done = subprocess.run(
        [PROMTOOL, "test", "rules", str(spec)], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
