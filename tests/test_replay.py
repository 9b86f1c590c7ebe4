"""Replaying recorded histories with today's workflow code: a change that would
break releases already in flight (non-determinism) fails here, not in production.
Histories are recorded by tests/record_histories.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows import ALL as WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").rglob("*.json"))
"""Current releases at the top level; `before-gates/` holds releases recorded before
the gates existed, which must keep replaying (they take the unpatched path)."""


def test_histories_cover_every_outcome_of_today_and_of_before_the_gates():
    current = {path.stem for path in HISTORIES if path.parent.name == "histories"}
    before_gates = {path.stem for path in HISTORIES if path.parent.name == "before-gates"}
    assert current >= {"promoted", "rolled_back", "rejected", "expired", "held_then_promoted", "invalid_request"}
    assert before_gates >= {"promoted", "rolled_back", "rejected", "invalid_request"}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda path: f"{path.parent.name}/{path.stem}")
async def test_recorded_history_replays_without_nondeterminism(path: Path):
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    result = await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"
