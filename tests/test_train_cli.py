"""`releasectl train`: the status table rendered from a TrainStatus, a bad train file
refused before anything connects, and a train started, approved once for the whole
train and watched to promoted on the real dev server with TrainWorld behind the
activities (as tests/test_train_workflow.py)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pipeline import cli
from pipeline.models import Outcome, Stage, TrainResult, TrainStatus
from pipeline.models.train import MemberStatus, TrainEntry
from pipeline.train_terminal import render_train, render_train_result
from tests.helpers.harness import TASK_QUEUE
from tests.helpers.train_world import TrainWorld
from tests.test_train_workflow import POLICY, member
from workflows import ALL as WORKFLOWS

TRAIN_ID = "train-spring-2027-abc123"


def members(**shoot: Any) -> list[MemberStatus]:
    return [
        MemberStatus(service="shoot", version="2.0.0", **{"state": "running", "phase": "canary", **shoot}),
        MemberStatus(service="gallery", version="2.0.0", depends_on=["shoot", "upload"]),
    ]


def row(text: str, service: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.split()[:1] == [service])


def write_train(directory: Path, releases: list[dict[str, Any]], **policy: Any) -> Path:
    path = directory / "train.json"
    path.write_text(json.dumps({"train": "spring-2027", "target": "local", "releases": releases, "policy": policy}))
    return path


# --- rendering ---------------------------------------------------------------------------


def test_status_is_a_table_of_members_with_their_dependencies_and_traffic():
    text = render_train(TrainStatus(train="spring-2027", members=members(canary_weight=50)), TRAIN_ID)
    assert text.splitlines()[0] == f"train     spring-2027  ({TRAIN_ID})"
    assert row(text, "shoot") == ["shoot", "2.0.0", "-", "running", "canary", "[#####-----]", "50%", "on", "2.0.0", "-"]
    assert row(text, "gallery") == ["gallery", "2.0.0", "shoot,", "upload", "waiting", "-", "-", "-"]
    for absent in ("waiting   ", "approved", "paused", "KILLED", "outcome   ", "timeline"):
        assert absent not in text


def test_status_says_who_waits_for_which_approval_and_how_to_give_it():
    status = TrainStatus(
        train="spring-2027", members=members(pending_approval=Stage.PRODUCTION), approvals={"canary": ["alice", "bob"]}
    )
    text = render_train(status, TRAIN_ID)
    waiting = "waiting   shoot for production approval: "
    assert f"{waiting}releasectl train approve {TRAIN_ID} --stage production --approver NAME" in text
    assert "approved  canary by alice, bob" in text


def test_status_shows_pause_kill_outcome_culprit_and_the_timeline():
    status = TrainStatus(
        train="spring-2027",
        members=members(outcome=Outcome.ROLLED_BACK, reason="error_rate breached", state="stopped"),
        paused=True,
        killed=True,
        outcome=Outcome.ROLLED_BACK,
        reason="shoot rolled_back: error_rate breached",
        culprit="shoot",
        timeline=[TrainEntry(at="2027-03-01T09:00:05+00:00", message="shoot departs")],
    )
    text = render_train(status, TRAIN_ID)
    assert f"releasectl train resume {TRAIN_ID}" in text
    assert "KILLED" in text
    assert "outcome   rolled_back: shoot rolled_back: error_rate breached (caused by shoot)" in text
    assert row(text, "shoot")[-3:] == ["rolled_back:", "error_rate", "breached"]
    assert text.endswith("timeline  (last 1 of 1)\n  09:00:05  shoot departs")


def test_result_names_the_outcome_and_each_members_state():
    result = TrainResult(train="spring-2027", outcome=Outcome.PROMOTED, reason="every member promoted",
                         members=members(state="promoted", outcome=Outcome.PROMOTED, reason="ok"))
    lines = render_train_result(result).splitlines()
    assert lines[0] == "promoted: every member promoted"
    assert lines[2].split()[:4] == ["shoot", "2.0.0", "-", "promoted"]


# --- a bad train file ------------------------------------------------------------------------


@pytest.fixture
def no_server(monkeypatch) -> list[Any]:
    """Connecting at all would be a failure: a bad train must start nothing."""
    attempts: list[Any] = []

    async def connect(settings: Any) -> None:
        attempts.append(settings)
        raise AssertionError("connected to Temporal")

    monkeypatch.setattr(cli, "connect", connect)
    return attempts


@pytest.mark.parametrize(
    ("releases", "named"),
    [
        ([member("shoot"), member("gallery", "shoot", policy={"canary_weight": "lots"})],
         "releases[1] (gallery): policy.canary_weight"),
        ([member("gallery", "shoot")], "gallery depends on 'shoot', which is not in the train"),
    ],
)
def test_a_bad_train_file_is_one_line_naming_the_member_and_starts_nothing(tmp_path, capsys, no_server, releases,
                                                                            named):
    assert cli.run_cli(["train", "start", str(write_train(tmp_path, releases))]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("releasectl: invalid train request: ") and named in err and err.count("\n") == 1
    assert no_server == []


def test_a_train_file_that_is_not_json_is_one_line(tmp_path, capsys, no_server):
    (tmp_path / "train.json").write_text("{releases: []")
    assert cli.run_cli(["train", "start", str(tmp_path / "train.json")]) == cli.EXIT_ERROR
    assert capsys.readouterr().err.startswith(f"releasectl: {tmp_path / 'train.json'} is not valid JSON")
    assert no_server == []


# --- end to end on the dev server ------------------------------------------------------------


@pytest.fixture
async def world(dev_server: WorkflowEnvironment, monkeypatch) -> AsyncIterator[TrainWorld]:
    """A worker with TrainWorld, and releasectl pointed at the dev server and its queue."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_server.client.service_client.config.target_host)
    monkeypatch.setenv("PIPELINE_TASK_QUEUE", TASK_QUEUE)
    monkeypatch.delenv("PIPELINE_GATES_FILE", raising=False)
    monkeypatch.setattr(cli, "WATCH_INTERVAL_SECONDS", 0.1)
    world = TrainWorld()
    async with Worker(dev_server.client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=world.activities()):
        yield world


async def releasectl(capsys, *argv: str) -> tuple[int, str]:
    """Run a command in this event loop (the worker's); its exit status and output."""
    code = await cli.run(cli.build_parser().parse_args(argv))
    return code, capsys.readouterr().out


async def status_until(capsys, train_id: str, line: str) -> str:
    """`releasectl train status` until its output has `line`; bounded."""
    async with asyncio.timeout(30):
        while line not in (text := (await releasectl(capsys, "train", "status", train_id))[1]):
            await asyncio.sleep(0.1)
    return text


async def test_a_train_started_approved_once_and_watched_to_promoted(world, tmp_path, capsys):
    gated = {**POLICY, "required_approvals": ["production"]}
    path = write_train(tmp_path, [member("shoot", policy=gated), member("gallery", "shoot", policy=gated)],
                       approvals="per_train")
    code, train_id = await releasectl(capsys, "train", "start", str(path))
    train_id = train_id.strip()
    assert code == 0 and re.fullmatch(r"train-spring-2027-[0-9a-f]{6}", train_id)

    text = await status_until(capsys, train_id, "waiting   shoot for production approval")
    assert row(text, "shoot")[3] == "running" and row(text, "gallery")[3] == "waiting"

    code, out = await releasectl(capsys, "train", "approve", train_id, "--stage", "production", "--approver", "alice")
    assert (code, out) == (0, f"sent approve to {train_id}\n")
    code, out = await releasectl(capsys, "train", "watch", train_id)

    assert code == 0, out
    result = out.split("promoted: every member promoted")[-1]  # the result, after any status that showed it
    assert row(result, "shoot")[3] == row(result, "gallery")[3] == "promoted"
    assert [event[1] for event in world.events if event[0] == "promote"] == ["shoot", "gallery"]
    assert "approved  production by alice" in (await releasectl(capsys, "train", "status", train_id))[1]
