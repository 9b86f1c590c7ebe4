"""Where a revert goes (pipeline/decisions/revert.py): pure, so every refusal is
checked here without a workflow."""

from __future__ import annotations

import pytest

from pipeline.decisions.revert import RevertRefused, plan_revert
from pipeline.models import PromotedVersion, RollbackWindow

WINDOW = RollbackWindow(
    stable="1.2.0",
    versions=[PromotedVersion(version="1.1.0", env={"MODE": "b"}), PromotedVersion(version="1.0.0", env={"MODE": "a"})],
    older=["0.9.0"],
    warm=["1.1.0"],
)


def test_without_a_version_the_newest_before_stable_is_chosen_warm():
    plan = plan_revert(WINDOW, "gallery", None)
    assert (plan.version, plan.warm, plan.env) == ("1.1.0", True, {"MODE": "b"})


def test_a_version_no_longer_running_is_deployed_again_with_its_recorded_env():
    plan = plan_revert(WINDOW, "gallery", "1.0.0")
    assert (plan.version, plan.warm, plan.env) == ("1.0.0", False, {"MODE": "a"})


def test_a_warm_version_outside_the_window_may_be_returned_to():
    window = WINDOW.model_copy(update={"warm": ["0.9.0"]})
    assert plan_revert(window, "gallery", "0.9.0").warm


@pytest.mark.parametrize(
    ("window", "to", "why"),
    [
        (WINDOW, "0.9.0", "outside the rollback window of gallery (versions it keeps: 1.1.0, 1.0.0)"),
        (WINDOW, "0.1.0", "0.1.0 was never promoted for gallery"),
        (WINDOW, "1.2.0", "1.2.0 already is the stable version"),
        (RollbackWindow(), None, "gallery has no stable version"),
        (RollbackWindow(stable="1.0.0"), None, "no version of gallery promoted before 1.0.0 is known"),
    ],
)
def test_refusals_say_why(window: RollbackWindow, to: str | None, why: str):
    with pytest.raises(RevertRefused, match=why.replace("(", r"\(").replace(")", r"\)")):
        plan_revert(window, "gallery", to)
