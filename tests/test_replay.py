"""Replaying recorded histories with today's workflow code: a change that would
break releases already in flight (non-determinism) fails here, not in production.
Histories are recorded by tests/record_histories.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.record_train_histories import replay_id
from workflows import ALL as WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").rglob("*.json"))
"""Current releases at the top level; each `before-*/` folder holds releases recorded
before a change that a `workflow.patched` branch keeps them replaying through:
`before-gates/` (no gates), `before-guarded-lock/` (a lock that ends with its run) and
`before-bake/` (promotion without bake, no rollback window, no revert) and `before-light/`
(a marker per patch, every read an ordinary activity, analyses a full interval after
the last one ended; see workflows/release/patches.py). `trains/` holds
release trains (tests/record_train_histories.py) and one member's own history."""


def test_histories_cover_every_outcome_of_today_and_of_before_each_patch():
    def outcomes(folder: str) -> set[str]:
        return {path.stem for path in HISTORIES if path.parent.name == folder}

    every_outcome = {"promoted", "rolled_back", "rejected", "expired", "held_then_promoted", "invalid_request"}
    assert outcomes("histories") >= every_outcome | {"rolled_back_in_bake", "reverted"}
    assert outcomes("before-light") >= every_outcome | {"rolled_back_in_bake", "reverted"}
    assert outcomes("before-bake") >= every_outcome
    assert outcomes("before-guarded-lock") >= every_outcome
    assert outcomes("before-gates") >= {"promoted", "rolled_back", "rejected", "invalid_request"}
    assert outcomes("trains") >= {"promoted", "rolled_back", "member"}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda path: f"{path.parent.name}/{path.stem}")
async def test_recorded_history_replays_without_nondeterminism(path: Path):
    workflow_id = replay_id(path.stem) if path.parent.name == "trains" else f"replay-{path.stem}"
    history = WorkflowHistory.from_json(workflow_id, path.read_text())
    result = await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"
