"""`releasectl plan` (pipeline/plan.py, pipeline/decisions/plan.py): the request validated
as the workflow validates it, the phases and their durations from the policy, the
calendar holds each production change would meet, the approvals from the gates file,
and the live activity read from a real HTTP endpoint; nothing is started."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.decisions.plan import plan_release
from pipeline.decisions.validation import parse_request
from pipeline.gates import GATES_FILE_VARIABLE, release_gates
from pipeline.models import BusinessCalendar, GatesConfig, Phase, Stage

REQUEST = {"service": "shop", "version": "2.0.0"}
THURSDAY_NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
WEEKDAY_MORNINGS = BusinessCalendar.model_validate(
    {"windows": [{"days": ["monday", "tuesday", "wednesday", "thursday", "friday"], "start": "09:00", "duration_minutes": 240}]}
)
GATES = {
    "groups": {"sre": ["ann", "bo"]},
    "defaults": {"approvals": {"production": {"groups": ["sre"], "users": ["cy"], "min_approvals": 2, "forbid_author": True}}},
}


def test_a_default_policy_release_plans_an_hour_of_phases():
    plan = plan_release(parse_request(REQUEST), BusinessCalendar(), None, THURSDAY_NOON)
    durations = [(phase.phase, phase.seconds) for phase in plan.phases]
    assert durations == [
        (Phase.STAGING, 0), (Phase.CANARY_APPROVAL, 0), (Phase.CANARY, 1800), (Phase.PRODUCTION_APPROVAL, 0),
        *[(Phase.PROGRESSIVE_SHIFT, 300)] * 4, (Phase.FINALIZE, 0), (Phase.BAKE, 600),
    ]
    assert plan.total_seconds == 3600 and plan.holds == [] and plan.fails is None
    assert [hold.stage for hold in plan.approvals] == [Stage.CANARY, Stage.PRODUCTION]


def test_a_release_that_would_leave_the_window_waits_at_the_change_that_falls_outside_it():
    """From 12:00 the window closes at 13:00: the canary (12:00-12:30) and the 25% step start
    inside it, the 75% step at 13:10 waits for Friday 09:00."""
    policy = {"canary_duration_seconds": 1800, "step_interval_seconds": 1200, "required_approvals": [], "bake_seconds": 0}
    plan = plan_release(parse_request({**REQUEST, "policy": policy}), WEEKDAY_MORNINGS, None, THURSDAY_NOON)
    assert [hold.change for hold in plan.holds] == ["route 75% to 2.0.0"]
    assert plan.holds[0].opens_at == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    waits = [phase for phase in plan.phases if "held until the calendar opens" in phase.detail]
    assert len(waits) == 1 and waits[0].seconds == (19 * 3600 + 50 * 60)


def test_outside_window_fail_and_a_live_canary_held_too_long_fail_the_plan():
    fail = {"outside_window": "fail", "required_approvals": []}
    plan = plan_release(parse_request({**REQUEST, "policy": fail}), WEEKDAY_MORNINGS, None, SATURDAY)
    assert plan.fails and plan.fails.startswith("start canary 2.0.0: outside the deployment windows")
    assert [phase.phase for phase in plan.phases] == [Phase.STAGING]
    short_hold = {"required_approvals": [], "max_canary_hold_seconds": 3600, "step_interval_seconds": 7200}
    plan = plan_release(parse_request({**REQUEST, "policy": short_hold}), WEEKDAY_MORNINGS, None, THURSDAY_NOON)
    assert plan.fails and "rolled back, the next opening is" in plan.fails


def test_approvals_come_from_the_gates_file_and_a_request_cannot_remove_them():
    config = GatesConfig.model_validate(GATES)
    request = parse_request({**REQUEST, "policy": {"required_approvals": []}})
    plan = plan_release(request, BusinessCalendar(), release_gates(config, "shop", "gates.json"), THURSDAY_NOON)
    [hold] = plan.approvals
    assert (hold.stage, hold.approvers, hold.min_approvals, hold.forbid_author) == (Stage.PRODUCTION, ["ann", "bo", "cy"], 2, True)


def write(directory: Path, name: str, content: object) -> str:
    path = directory / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.mark.parametrize("request_text, message", [
    ("{not json", "is not valid JSON"),
    (json.dumps({**REQUEST, "policy": {"steps": [50, 20]}}), "policy.steps: must strictly increase"),
    (json.dumps({"service": "shop"}), "version: a release needs the version"),
])
def test_a_bad_request_is_named_and_exits_non_zero(tmp_path, capsys, request_text, message):
    assert cli.run_cli(["plan", write(tmp_path, "request.json", request_text)]) == cli.EXIT_ERROR
    assert message in capsys.readouterr().err


def test_a_bad_gates_file_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(GATES_FILE_VARIABLE, write(tmp_path, "gates.json", {"defaults": {"approvals": {"x": {}}}}))
    assert cli.run_cli(["plan", write(tmp_path, "request.json", REQUEST)]) == cli.EXIT_ERROR
    assert "invalid gates file" in capsys.readouterr().err


class Activity(BaseHTTPRequestHandler):
    counts = {"active_uploads": 3, "processing_jobs": 0, "client_sessions": 0}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps(self.counts).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def activity_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Activity)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/platform/activity"
    server.shutdown()
    server.server_close()


def test_the_command_reads_gates_calendar_and_live_activity_and_prints_json(tmp_path, capsys, monkeypatch, activity_endpoint):
    gates = {**GATES, "defaults": {**GATES["defaults"], "live_activity": {"url": activity_endpoint}}}
    monkeypatch.setenv(GATES_FILE_VARIABLE, write(tmp_path, "gates.json", gates))
    assert cli.run_cli(["plan", write(tmp_path, "request.json", REQUEST), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["live_activity"] == "held: 3 active_uploads"
    assert [(a["stage"], a["min_approvals"]) for a in plan["approvals"]] == [("canary", 1), ("production", 2)]
    assert plan["total_seconds"] == 3600 and plan["fails"] is None
    assert cli.run_cli(["plan", write(tmp_path, "request.json", REQUEST)]) == 0
    text = capsys.readouterr().out
    assert "approval production: 2 of ann, bo, cy; not the author" in text and "total: 1:00:00" in text


def test_an_unreadable_live_activity_endpoint_is_said_not_taken_as_clear(tmp_path, capsys, monkeypatch):
    gates = {"defaults": {"live_activity": {"url": "http://127.0.0.1:9/activity", "timeout_seconds": 1}}}
    monkeypatch.setenv(GATES_FILE_VARIABLE, write(tmp_path, "gates.json", gates))
    assert cli.run_cli(["plan", write(tmp_path, "request.json", REQUEST), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["live_activity"].startswith("unreadable now (ConnectError)")
