"""The bounded labels a release's metrics carry (workflows/release/telemetry.py): why
a release that entered its rollback did, and each check's verdict."""

from __future__ import annotations

import pytest

from pipeline.models import Metric, MetricCheck, Outcome
from workflows.release.telemetry import CANCELLED, CAUSES, check_verdict, rollback_cause

BREACH = MetricCheck(metric=Metric.ERROR_RATE, value=0.2, threshold="<= 0.01", passed=False)


@pytest.mark.parametrize(
    "outcome, reason, breach, forced, baking, cause",
    [
        (Outcome.ROLLED_BACK, "error_rate 0.2 > 0.01", BREACH, False, False, "breach"),
        (Outcome.ROLLED_BACK, "error_rate 0.2 > 0.01 during bake", BREACH, False, True, "bake"),
        (Outcome.ROLLED_BACK, "kill switch pulled by bob: pager", None, True, False, "kill_switch"),
        (Outcome.ROLLED_BACK, "kill switch pulled by bob: pager", None, True, True, "kill_switch"),
        (Outcome.ROLLED_BACK, "error_rate 0.2 > 0.01", BREACH, True, False, "breach"),  # a kill switch after the breach
        (Outcome.ROLLED_BACK, CANCELLED, None, False, False, "cancel"),
        (Outcome.ROLLED_BACK, "3 inconclusive checks in a row", None, False, False, "analysis"),
        (Outcome.REJECTED, "rejected at canary by alice", None, False, False, "reject"),
        (Outcome.EXPIRED, "production approval not given by ...", None, False, False, "expiry"),
        (Outcome.FAILED, "route 50% to 2.0.0 failed: timeout", None, False, False, "failure"),
    ],
)
def test_a_rollback_is_labelled_by_what_caused_it(outcome, reason, breach, forced, baking, cause):
    assert rollback_cause(outcome, reason, breach, forced=forced, baking=baking) == cause
    assert cause in CAUSES  # every cause is shown at 0 from a service's first release


def test_a_check_verdict_is_pass_fail_or_inconclusive():
    verdicts = [check_verdict(BREACH.model_copy(update={"passed": passed})) for passed in (True, False, None)]
    assert verdicts == ["pass", "fail", "inconclusive"]
