"""The committed rules are the generator's output, promtool accepts them, and
their unit tests (deploy/prometheus/tests/*.yml) pass."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from services.reporting import rules

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "cx.yml"
TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                              reason="promtool not installed (apt-get install prometheus)")


def test_committed_rules_are_the_generated_ones():
    assert RULES.read_text(encoding="utf-8") == rules.render(), (
        "deploy/prometheus/rules/cx.yml is stale: python -m services.reporting.rules > deploy/prometheus/rules/cx.yml"
    )


def test_every_expression_counts_replicas_once():
    for group in rules.rule_groups()["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"]
            if "cx_" in expr and "_total" in expr or "_bucket" in expr:
                assert "max without(instance, pod)" in expr, rule.get("record") or rule.get("alert")


@pytest.mark.prometheus
@promtool
def test_promtool_checks_the_rules():
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
@promtool
@pytest.mark.parametrize("path", TESTS, ids=[p.name for p in TESTS])
def test_promtool_rule_unit_tests_pass(path):
    assert TESTS, "no rule tests found"
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=120,
                            cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
