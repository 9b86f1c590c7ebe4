"""The Prometheus alert rules of deploy/grafana/ checked and unit-tested by Prometheus'
own promtool (tests/alerts/: series shaped like the worker's, and when each alert
fires). That every rule evaluates against a real worker's metrics is in
tests/test_worker_metrics.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "grafana" / "release-pipeline-alerts.yml"
RULE_TESTS = Path(__file__).parent / "alerts" / "release-pipeline-alerts.test.yml"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool (apt-get install -y prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=RULE_TESTS.parent, capture_output=True, text=True, timeout=60)


def test_the_rules_are_valid():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


def test_each_alert_fires_when_and_only_when_it_should():
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
