"""Release gates on the time-skipping server: approvals with identity and deadlines,
the deployment calendar, break-glass, live-activity holds and notifications.

The gates come from a real gates file read by the real gate activities; the live
activity endpoint and the webhooks are a real HTTP server on loopback
(tests/helpers/http_double.py). Only targets and metrics are FakeWorld's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from pipeline.models import Outcome, Phase, Stage
from tests.helpers.fakes import FAILING, FakeWorld
from tests.helpers.harness import REQUEST, Drive, result_with, status
from tests.helpers.http_double import PlatformDouble
from workflows.release import ReleaseWorkflow

NO_APPROVALS = {"required_approvals": []}
CLOSING_EVENTS = [
    f"activity_task_{outcome}_event_attributes" for outcome in ("completed", "failed", "timed_out", "canceled")
]
ADR_CALENDAR = {
    "timezone": "UTC",
    "windows": [
        {"days": ["tuesday"], "start": "10:00", "duration_minutes": 120},
        {"days": ["thursday"], "start": "14:00", "duration_minutes": 120},
    ],
    "freezes": [{"reason": "wedding season weekend", "months": [5, 6, 7, 8, 9], "weekdays": ["saturday", "sunday"]}],
}


@pytest.fixture
def gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], None]:
    """Write the worker's gates file (the worker of these tests runs in-process)."""

    def write(config: dict[str, Any]) -> None:
        path = tmp_path / "gates.json"
        path.write_text(json.dumps(config))
        monkeypatch.setenv("PIPELINE_GATES_FILE", str(path))

    return write


@pytest.fixture
def platform() -> Iterator[PlatformDouble]:
    with PlatformDouble() as double:
        yield double


def request(**policy: Any) -> dict[str, Any]:
    return {**REQUEST, "policy": policy}


def approve(stage: str, approver: str) -> dict[str, str]:
    return {"stage": stage, "approver": approver}


# --- approvals -----------------------------------------------------------------------------


async def test_two_person_rule_counts_a_repeated_approver_once(drive: Drive, world: FakeWorld, start, gates):
    gates({"defaults": {"approvals": {"production": {"users": ["alice", "bob", "carol"], "min_approvals": 2}}}})
    handle = await start()
    await drive.approve(handle, "canary", "dave")
    await drive.until(handle, lambda s: s.pending_approval == "production")

    await handle.signal(ReleaseWorkflow.approve, approve("production", "alice"))
    again = await handle.execute_update(ReleaseWorkflow.submit_approval, approve("production", "alice"))
    await handle.signal(ReleaseWorkflow.approve, approve("production", "alice"))
    waiting = await drive.until(handle, lambda s: any("counted once" in line for line in s.ignored_signals))
    weights_while_waiting = list(world.weights)
    second = await handle.execute_update(ReleaseWorkflow.submit_approval, approve("production", "bob"))
    result = await handle.result()

    assert not again.counted and again.approvals == 1 and again.required == 2
    assert waiting.pending_approval == "production" and weights_while_waiting == [10]
    assert second.counted and second.approvals == 2
    assert result.outcome is Outcome.PROMOTED
    assert [(a.stage, a.approver) for a in result.approvals] == [("canary", "dave"), ("production", "alice"), ("production", "bob")]


async def test_disallowed_approver_is_refused_by_the_update_and_ignored_by_the_signal(drive: Drive, world: FakeWorld, start, gates):
    gates({
        "groups": {"release-managers": ["alice"]},
        "defaults": {"approvals": {"canary": {"groups": ["release-managers"], "users": ["bob"], "forbid_author": True}}},
    })
    handle = await start({**REQUEST, "author": "bob", "policy": {"required_approvals": ["canary"]}})
    await drive.until(handle, lambda s: s.pending_approval == "canary")

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ReleaseWorkflow.submit_approval, approve("canary", "mallory"))
    with pytest.raises(WorkflowUpdateFailedError) as own_release:
        await handle.execute_update(ReleaseWorkflow.submit_approval, approve("canary", "bob"))
    with pytest.raises(WorkflowUpdateFailedError) as wrong_stage:
        await handle.execute_update(ReleaseWorkflow.submit_approval, approve("production", "alice"))
    await handle.signal(ReleaseWorkflow.approve, approve("canary", "mallory"))
    ignored = await drive.until(handle, lambda s: len(s.ignored_signals) == 1)

    assert "mallory may not approve canary; allowed: alice, bob (groups: release-managers)" in str(refused.value.cause)
    assert "bob is the release's author" in str(own_release.value.cause)
    assert "the production approval is not pending" in str(wrong_stage.value.cause)
    assert "mallory may not approve canary" in ignored.ignored_signals[0]
    assert ignored.pending_approval == "canary" and ignored.approvals == [] and world.weights == []

    receipt = await handle.execute_update(ReleaseWorkflow.submit_approval, approve("canary", "alice"))
    assert receipt.counted and (await handle.result()).outcome is Outcome.PROMOTED


async def test_configured_approvals_cannot_be_waived_by_the_request(drive: Drive, world: FakeWorld, start, gates):
    gates({"defaults": {"approvals": {"production": {"users": ["alice"]}}}})
    handle = await start(request(**NO_APPROVALS))
    waiting = await drive.until(handle, lambda s: s.pending_approval is not None)
    assert waiting.pending_approval == "production" and list(world.weights) == [10]
    await handle.signal(ReleaseWorkflow.approve, approve("production", "alice"))
    assert (await handle.result()).outcome is Outcome.PROMOTED


async def test_unanswered_canary_approval_expires_and_a_late_one_does_not_revive_it(drive: Drive, world: FakeWorld, start, gates):
    gates({})
    handle = await start(request(approval_timeout_seconds=3600))
    waiting = await drive.until(handle, lambda s: s.pending_approval == "canary")
    result = await handle.result()

    with pytest.raises(RPCError, match="(?i)completed"):
        await handle.signal(ReleaseWorkflow.approve, approve("canary", "alice"))
    assert result.outcome is Outcome.EXPIRED and "canary approval not given by" in result.reason
    deadline = datetime.fromisoformat(waiting.approval_deadline)
    started = datetime.fromisoformat(waiting.timeline[0].at)
    assert timedelta(seconds=3600) <= deadline - started <= timedelta(seconds=3601)
    assert world.weights == [] and ("canary", "2.0.0") not in world.called("deploy_version")
    assert (await status(handle)).approvals == []


async def test_unanswered_production_approval_expires_and_rolls_the_canary_back(drive: Drive, world: FakeWorld, start, gates):
    gates({})
    handle = await start(request(approval_timeout_seconds=7200))
    result = await result_with(handle, lambda: drive.approve(handle, "canary"))
    assert result.outcome is Outcome.EXPIRED and "production approval" in result.reason
    assert world.weights == [10, 0]


# --- deployment calendar -------------------------------------------------------------------


def next_saturday_in_july(now: datetime) -> datetime:
    day = datetime(now.year if now.month < 7 else now.year + 1, 7, 1, 12, tzinfo=timezone.utc)
    return day + timedelta(days=(5 - day.weekday()) % 7)


async def test_release_started_on_a_july_saturday_waits_for_the_next_window(drive: Drive, world: FakeWorld, start, gates, time_skipping_env):
    gates({"defaults": {"calendar": ADR_CALENDAR}})
    saturday = next_saturday_in_july(await time_skipping_env.get_current_time())
    await time_skipping_env.sleep((saturday - await time_skipping_env.get_current_time()).total_seconds())
    handle = await start(request(**NO_APPROVALS))

    held = await drive.until(handle, lambda s: s.hold is not None)
    tuesday_ten = (saturday + timedelta(days=3)).replace(hour=10)
    assert held.hold.gate == "window" and "frozen: wedding season weekend" in held.hold.reason
    assert held.hold.until == tuesday_ten.isoformat() and world.weights == []

    result = await handle.result()
    first_traffic = next(e for e in (await status(handle)).timeline if e.message.startswith("10% of traffic"))
    assert result.outcome is Outcome.PROMOTED and world.weights == [10, 25, 50, 75, 100]
    assert tuesday_ten <= datetime.fromisoformat(first_traffic.at) < tuesday_ten + timedelta(minutes=1)


async def test_outside_the_calendar_a_fail_policy_stops_before_production_changes(world: FakeWorld, start, gates):
    gates({"defaults": {"calendar": {"freezes": [{"reason": "year-end freeze", "months": list(range(1, 13))}]}}})
    result = await (await start(request(outside_window="fail", **NO_APPROVALS))).result()
    assert result.outcome is Outcome.FAILED and "year-end freeze" in result.reason and "does not open within 366 days" in result.reason
    assert world.weights == [] and ("canary", "2.0.0") not in world.called("deploy_version")


async def test_a_gates_file_broken_mid_release_holds_production_until_it_is_fixed(drive: Drive, world: FakeWorld, start, gates, tmp_path):
    gates({})
    handle = await start(request(**NO_APPROVALS))
    await drive.until(handle, lambda s: s.canary_weight == 25)
    (tmp_path / "gates.json").write_text("{not json")

    held = await drive.until(handle, lambda s: s.hold is not None)
    weights_while_broken = list(world.weights)
    gates({})
    result = await handle.result()

    assert held.hold.gate == "window" and held.hold.reason.startswith("calendar unreadable") and "cannot read the gates file" in held.hold.reason
    assert weights_while_broken == [10, 25]
    assert result.outcome is Outcome.PROMOTED and world.weights == [10, 25, 50, 75, 100]


async def test_a_live_canary_is_rolled_back_rather_than_held_for_days(drive: Drive, world: FakeWorld, start, gates, time_skipping_env):
    gates({})
    handle = await start(request(**NO_APPROVALS))
    await drive.until(handle, lambda s: s.canary_weight == 25)
    now = await time_skipping_env.get_current_time()
    gates({"defaults": {"calendar": {"freezes": [
        {"reason": "holidays", "start": now.isoformat(), "end": (now + timedelta(days=10)).isoformat()}
    ]}}})
    result = await handle.result()

    assert result.outcome is Outcome.FAILED and "more than a live canary may be held (24 h)" in result.reason
    assert world.weights == [10, 25, 0]


async def test_break_glass_lets_an_urgent_fix_through_a_freeze(drive: Drive, world: FakeWorld, start, gates, time_skipping_env):
    now = await time_skipping_env.get_current_time()
    freeze = {"reason": "incident freeze", "start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(days=14)).isoformat()}
    gates({"groups": {"sre": ["olivia"]}, "defaults": {"calendar": {"freezes": [freeze]}, "break_glass": {"groups": ["sre"]}}})
    handle = await start(request(**NO_APPROVALS))
    held = await drive.until(handle, lambda s: s.hold is not None)
    assert held.hold.gate == "window" and "incident freeze" in held.hold.reason and world.weights == []

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ReleaseWorkflow.submit_break_glass, {"actor": "mallory", "reason": "yolo"})
    record = await handle.execute_update(ReleaseWorkflow.submit_break_glass, {"actor": "olivia", "reason": "fix for uploads losing EXIF"})
    result = await handle.result()

    assert "mallory may not break glass; allowed: olivia" in str(refused.value.cause)
    assert record.actor == "olivia"
    assert result.outcome is Outcome.PROMOTED and world.weights == [10, 25, 50, 75, 100]
    assert result.break_glass is not None and result.break_glass.reason == "fix for uploads losing EXIF"
    assert any("BREAK-GLASS by olivia" in e.message for e in (await status(handle)).timeline)


# --- live activity -------------------------------------------------------------------------


async def test_active_uploads_hold_a_production_step_until_they_finish(drive: Drive, world: FakeWorld, start, gates, platform):
    gates({"defaults": {"live_activity": {"url": f"{platform.url}/activity"}}})
    handle = await start(request(**NO_APPROVALS))
    await drive.until(handle, lambda s: s.canary_weight == 25)
    platform.activity["active_uploads"] = 3

    held = await drive.until(handle, lambda s: s.hold is not None)
    reads = platform.activity_reads
    await drive.until(handle, lambda s: platform.activity_reads >= reads + 3)
    still, weights_while_held = await status(handle), list(world.weights)
    platform.activity["active_uploads"] = 0
    result = await handle.result()

    assert held.hold.gate == "live_activity" and held.hold.change == "route 50% to 2.0.0"
    assert held.hold.reason == "3 active_uploads"
    assert still.canary_weight == 25 and weights_while_held == [10, 25]
    assert result.outcome is Outcome.PROMOTED and world.weights == [10, 25, 50, 75, 100]


async def test_live_activity_that_never_clears_fails_the_release_naming_it(world: FakeWorld, start, gates, platform):
    platform.activity.update(processing_jobs=2, client_sessions=5)
    gates({"defaults": {"live_activity": {"url": f"{platform.url}/activity"}}})
    result = await (await start(request(live_activity_wait_seconds=600, **NO_APPROVALS))).result()
    assert result.outcome is Outcome.FAILED
    assert "start canary 2.0.0 held" in result.reason and "2 processing_jobs, 5 client_sessions" in result.reason
    assert world.weights == [] and ("canary", "2.0.0") not in world.called("deploy_version")


async def test_an_unreadable_live_activity_endpoint_is_never_clear(world: FakeWorld, start, gates, platform):
    gates({"defaults": {"live_activity": {"url": f"{platform.url}/missing"}}})
    result = await (await start(request(live_activity_wait_seconds=120, **NO_APPROVALS))).result()
    assert result.outcome is Outcome.FAILED and "unknown (live activity of" in result.reason and "HTTP 404" in result.reason


# --- notifications -------------------------------------------------------------------------


async def activities_in_flight_when_scheduled(handle, activity: str) -> list[set[str]]:
    """For each scheduling of `activity` in the history, the activities still open then."""
    open_now: dict[int, str] = {}
    seen: list[set[str]] = []
    for event in (await handle.fetch_history()).events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            if name == activity:
                seen.append(set(open_now.values()))
            open_now[event.event_id] = name
        for closed in CLOSING_EVENTS:
            if event.HasField(closed):
                open_now.pop(getattr(event, closed).scheduled_event_id, None)
    return seen


async def test_notifications_tell_each_step_and_a_slow_webhook_does_not_delay_the_rollout(
    drive: Drive, world: FakeWorld, start, gates, platform, monkeypatch
):
    monkeypatch.setenv("TEAM_HOOK_URL", platform.hook_url("team"))
    monkeypatch.setenv("SLOW_HOOK_URL", platform.hook_url("slow"))
    platform.hook_delay_seconds["slow"] = 3
    gates({"defaults": {"webhooks": [
        {"name": "team", "format": "json", "url_env": "TEAM_HOOK_URL"},
        {"name": "slow", "format": "slack", "url_env": "SLOW_HOOK_URL", "timeout_seconds": 0.5},
    ]}})
    handle = await start(request(required_approvals=["production"]))
    result = await result_with(handle, lambda: drive.approve(handle, "production"))
    final = await status(handle)

    assert result.outcome is Outcome.PROMOTED
    events = [(body["event"], body["phase"]) for body in platform.received("team")]
    assert events[0] == ("phase", "staging") and events[-1] == ("finished", "done")
    needed = next(body for body in platform.received("team") if body["event"] == "approval_needed")
    assert needed["stage"] == "production" and needed["deadline"] and needed["approvers"] == []
    assert platform.received("team")[-1]["outcome"] == "promoted"
    keys = [d.headers["Idempotency-Key"] for d in platform.deliveries if d.hook == "team"]
    assert len(set(keys)) == len(keys) and keys[0].endswith("/team")

    assert final.notification_failures and all("slow" in f and "no answer within 0.5s" in f for f in final.notification_failures)
    in_flight = await activities_in_flight_when_scheduled(handle, "set_traffic")
    assert any("notify" in names for names in in_flight), "the rollout waited for its notifications"


async def test_rollback_notification_names_the_breached_rule(drive: Drive, world: FakeWorld, start, gates, platform, monkeypatch):
    monkeypatch.setenv("TEAM_HOOK_URL", platform.hook_url("team"))
    gates({"defaults": {"webhooks": [{"name": "team", "format": "slack", "url_env": "TEAM_HOOK_URL", "events": ["rollback"]}]}})
    world.canary_health = lambda weight: FAILING
    result = await (await start(request(**NO_APPROVALS))).result()

    assert result.outcome is Outcome.ROLLED_BACK
    [rollback] = platform.received("team")
    assert rollback["text"].startswith("Rolling back: ")
    facts = " ".join(element["text"] for element in rollback["blocks"][2]["elements"])
    assert "*Breached* error_rate = 0.2 (threshold <= 0.01)" in facts


async def test_a_release_without_a_gates_file_keeps_working_for_anyone(drive: Drive, world: FakeWorld, start):
    handle = await start()
    result = await result_with(handle, lambda: drive.approve(handle, "canary", "zed"), lambda: drive.approve(handle, "production", "zed"))
    assert result.outcome is Outcome.PROMOTED
    assert (await status(handle)).gates.source == "built-in gates"
    assert Phase.DONE is (await status(handle)).phase and Stage.PRODUCTION in {a.stage for a in result.approvals}


# --- reverts -------------------------------------------------------------------------------

REVERT = {"service": "gallery", "revert": {"actor": "carol", "reason": "checkout broken"}}


async def test_a_revert_goes_through_a_freeze_says_so_and_notifies(
    world: FakeWorld, start, gates, platform, monkeypatch, time_skipping_env
):
    now = await time_skipping_env.get_current_time()
    freeze = {"reason": "wedding weekend", "start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(days=2)).isoformat()}
    monkeypatch.setenv("TEAM_HOOK_URL", platform.hook_url("team"))
    gates({"defaults": {"calendar": {"freezes": [freeze]}, "webhooks": [{"name": "team", "format": "slack", "url_env": "TEAM_HOOK_URL"}]}})
    handle = await start(REVERT)
    result = await handle.result()

    assert result.outcome is Outcome.REVERTED and world.called("revert_version") == ["0.9.0"]
    timeline = [entry.message for entry in (await status(handle)).timeline]
    assert any("wedding weekend" in message and "allowed, a revert reduces risk" in message for message in timeline), timeline
    assert platform.received("team")[-1]["text"].startswith("Release finished: ")
    failed_tasks = [e async for e in handle.fetch_history_events() if e.HasField("workflow_task_failed_event_attributes")]
    assert failed_tasks == [], "a notification of a revert before its version is chosen failed a workflow task"


async def test_live_uploads_hold_a_revert_until_they_finish(drive: Drive, world: FakeWorld, start, gates, platform):
    platform.activity["active_uploads"] = 2
    gates({"defaults": {"live_activity": {"url": f"{platform.url}/activity"}}})
    handle = await start(REVERT)
    held = await drive.until(handle, lambda s: s.hold is not None)
    assert held.hold.gate == "live_activity" and world.called("revert_version") == []

    platform.activity["active_uploads"] = 0
    result = await handle.result()
    assert result.outcome is Outcome.REVERTED and world.called("revert_version") == ["0.9.0"]
