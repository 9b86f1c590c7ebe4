"""`releasectl train schedule`: durations and specs, and a schedule's life on the real
dev server: created (paused), described with its next runs, triggered by hand to start
a train, paused and unpaused, deleted."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from pipeline import cli, schedules, train_cli
from pipeline.cli_input import CliError
from tests.helpers.harness import TASK_QUEUE
from tests.test_train_cli import releasectl, write_train
from tests.test_train_workflow import member


@pytest.mark.parametrize(("text", "every"), [("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)),
                                             ("6h", timedelta(hours=6)), ("1d", timedelta(days=1))])
def test_every_takes_a_number_and_a_unit(text, every):
    assert schedules.parse_every(text) == every


@pytest.mark.parametrize("text", ["0m", "1.5h", "h", "30", "1w"])
def test_a_duration_that_is_not_one_is_refused(text):
    with pytest.raises(CliError, match="expected a duration like 30m"):
        schedules.parse_every(text)


def spec_of(tmp_path, *when: str):
    path = write_train(tmp_path, [member("shoot"), member("gallery", "shoot")])
    args = cli.build_parser().parse_args(["train", "schedule", "create", "spring", "--file", str(path), *when])
    return schedules.schedule_spec(args, train_cli.load_train(args.file))


def test_a_cron_spec_is_kept_as_given_and_said_in_utc(tmp_path):
    spec, said = spec_of(tmp_path, "--cron", "0 9 * * 2")
    assert spec.cron_expressions == ["0 9 * * 2"] and said == "cron 0 9 * * 2 (UTC)"


def gates_file(tmp_path, monkeypatch, **services: dict) -> None:
    windows = [{"days": ["tuesday"], "start": "10:00", "duration_minutes": 120},
               {"days": ["thursday", "sunday"], "start": "14:30", "duration_minutes": 120}]
    gates = {"defaults": {"calendar": {"timezone": "Europe/Berlin", "windows": windows}}, "services": services}
    (tmp_path / "gates.json").write_text(json.dumps(gates))
    monkeypatch.setenv("PIPELINE_GATES_FILE", str(tmp_path / "gates.json"))


def test_windows_depart_at_each_opening_in_the_calendars_zone(tmp_path, monkeypatch):
    gates_file(tmp_path, monkeypatch)
    spec, said = spec_of(tmp_path, "--windows")
    assert spec.time_zone_name == "Europe/Berlin"
    assert [([r.start for r in c.day_of_week], c.hour[0].start, c.minute[0].start) for c in spec.calendars] == [
        ([2], 10, 0), ([4, 0], 14, 30)
    ]
    assert said == "at each window: tuesday 10:00; thursday/sunday 14:30 (Europe/Berlin)"


def test_windows_need_one_calendar_with_windows(tmp_path, monkeypatch):
    gates_file(tmp_path, monkeypatch, gallery={"calendar": {"timezone": "UTC"}})
    with pytest.raises(CliError, match="calendars in .*gates.json differ"):
        spec_of(tmp_path, "--windows")
    monkeypatch.delenv("PIPELINE_GATES_FILE")
    with pytest.raises(CliError, match="no deployment windows for these services in"):
        spec_of(tmp_path, "--windows")


def test_a_schedule_name_that_could_not_be_a_train_name_is_refused(tmp_path, capsys):
    path = write_train(tmp_path, [member("shoot")])
    assert cli.run_cli(["train", "schedule", "create", "Bad Name", "--file", str(path), "--every", "1h"]) == 1
    assert "schedule name 'Bad Name'" in capsys.readouterr().err


def next_runs(describe: str) -> list[datetime]:
    line = next(line for line in describe.splitlines() if line.startswith("next "))
    return [datetime.strptime(at.strip(), "%Y-%m-%d %H:%M:%S UTC") for at in line[len("next"):].split(",")]


async def test_a_schedule_is_described_triggered_paused_unpaused_and_deleted(dev_server: WorkflowEnvironment, tmp_path,
                                                                             monkeypatch, capsys):
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_server.client.service_client.config.target_host)
    monkeypatch.setenv("PIPELINE_TASK_QUEUE", TASK_QUEUE)
    path = write_train(tmp_path, [member("shoot"), member("gallery", "shoot")])
    code, out = await releasectl(capsys, "train", "schedule", "create", "spring", "--file", str(path), "--every", "1h",
                                 "--paused", "--actor", "carol")
    assert (code, out) == (0, "schedule spring: train spring-2027 every 1h, paused\n")

    described = (await releasectl(capsys, "train", "schedule", "describe", "spring"))[1]
    assert "(paused: created paused by carol)" in described
    assert "starts    ReleaseTrainWorkflow train-spring-2027-<time>, every 1h" in described
    assert "overlap   skip" in described
    runs = next_runs(described)
    assert len(runs) == schedules.NEXT_RUNS_SHOWN
    assert [later - earlier for earlier, later in zip(runs, runs[1:])] == [timedelta(hours=1)] * 2

    assert (await releasectl(capsys, "train", "schedule", "trigger", "spring"))[0] == 0
    handle = dev_server.client.get_schedule_handle("spring")
    async with asyncio.timeout(30):
        while not (started := (await handle.describe()).info.recent_actions):
            await asyncio.sleep(0.1)
    train = await dev_server.client.get_workflow_handle(started[0].action.workflow_id).describe()
    assert train.workflow_type == "ReleaseTrainWorkflow" and train.id.startswith("train-spring-2027-")

    await releasectl(capsys, "train", "schedule", "unpause", "spring", "--actor", "carol")
    assert "(active: unpaused by carol)" in (await releasectl(capsys, "train", "schedule", "describe", "spring"))[1]
    await releasectl(capsys, "train", "schedule", "pause", "spring", "--actor", "bob", "--reason", "freeze")
    description = await handle.describe()
    assert description.schedule.state.paused and description.schedule.state.note == "paused by bob: freeze"
    assert description.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    assert "spring  paused" in (await releasectl(capsys, "train", "schedule", "list"))[1]

    assert (await releasectl(capsys, "train", "schedule", "delete", "spring"))[0] == 0
    with pytest.raises(CliError, match="not found"):
        await releasectl(capsys, "train", "schedule", "describe", "spring")


async def test_a_windows_schedule_runs_next_at_window_openings(dev_server: WorkflowEnvironment, tmp_path, monkeypatch,
                                                              capsys):
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_server.client.service_client.config.target_host)
    gates_file(tmp_path, monkeypatch)
    path = write_train(tmp_path, [member("shoot")])
    code, out = await releasectl(capsys, "train", "schedule", "create", "windows", "--file", str(path), "--windows")
    assert (code, out) == (0, "schedule windows: train spring-2027 at each window: "
                              "tuesday 10:00; thursday/sunday 14:30 (Europe/Berlin)\n")

    runs = next_runs((await releasectl(capsys, "train", "schedule", "describe", "windows"))[1])
    berlin = [run.replace(tzinfo=timezone.utc).astimezone(ZoneInfo("Europe/Berlin")) for run in runs]
    assert {(at.strftime("%A"), at.strftime("%H:%M")) for at in berlin} == {
        ("Tuesday", "10:00"), ("Thursday", "14:30"), ("Sunday", "14:30")
    }
