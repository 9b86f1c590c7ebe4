"""releasectl without a server: rendering, argument parsing, payloads, and the
commands against a recording stand-in for the Temporal client."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from pipeline import cli, search_attributes, terminal
from pipeline.decisions.validation import InvalidRequest
from pipeline.models import (
    Analysis,
    ApprovalDecision,
    ApprovalReceipt,
    BreakGlass,
    BreakGlassRecord,
    GateHold,
    KillReceipt,
    KillSwitch,
    Metric,
    MetricCheck,
    Operator,
    Outcome,
    Phase,
    ReleaseResult,
    RevertRecord,
    ReleaseStatus,
    Stage,
    TimelineEntry,
    TrainRequest,
    Verdict,
)


def status(**fields: Any) -> ReleaseStatus:
    base = {"release_id": "release-gallery-2.0.0-abc123", "service": "gallery", "version": "2.0.0", "target": "local"}
    return ReleaseStatus.model_validate({"phase": Phase.CANARY, **base, **fields})


def analysis(*checks: MetricCheck) -> Analysis:
    return Analysis(
        at="2025-03-01T12:30:05+00:00",
        phase=Phase.CANARY,
        canary_weight=10,
        verdict=Verdict.FAIL,
        canary_requests=240,
        checks=list(checks),
        summary="error_rate 0.2 above 0.01",
    )


def table_row(text: str, first_cell: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.split()[:1] == [first_cell])


# --- rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "bar"),
    [(0, "[----------]"), (3, "[#---------]"), (50, "[#####-----]"), (75, "[########--]"), (100, "[##########]")],
)
def test_traffic_bar_fills_in_proportion_and_shows_any_traffic(weight, bar):
    assert terminal.traffic_bar(weight, "2.0.0") == f"{bar} {weight}% on 2.0.0"


def test_status_shows_phase_traffic_and_how_to_approve_the_pending_stage():
    text = cli.render_status(status(canary_weight=50, pending_approval=Stage.PRODUCTION, stable_version="1.0.0"))
    assert "phase     canary   stable: 1.0.0" in text
    assert "[#####-----] 50% on 2.0.0" in text
    assert "releasectl approve release-gallery-2.0.0-abc123 --stage production --approver NAME" in text


def test_status_shows_the_deadline_the_approvers_a_hold_and_break_glass():
    gates = {"approvals": {"production": {"anyone": False, "approvers": ["alice", "bob"], "min_approvals": 2}}, "source": "g.json"}
    text = cli.render_status(
        status(
            pending_approval=Stage.PRODUCTION,
            approval_deadline="2026-07-07T10:00:00+00:00",
            gates=gates,
            hold=GateHold(gate="window", change="route 25% to 2.0.0", reason="frozen: wedding season weekend", until="2026-07-07T10:00:00+00:00"),
            break_glass={"actor": "olivia", "reason": "INC-42", "at": "2026-07-04T12:00:00+00:00"},
            notification_failures=["slack: HTTP 500"],
        )
    )
    assert "waiting   for production approval by 2026-07-07T10:00:00+00:00" in text
    assert "approvers 2 of alice, bob" in text
    assert "held      route 25% to 2.0.0: frozen: wedding season weekend until 2026-07-07T10:00:00+00:00" in text
    assert "BREAK-GLASS by olivia: INC-42" in text
    assert "notify    1 failed, last: slack: HTTP 500" in text


def test_quiet_status_leaves_out_what_does_not_apply():
    text = cli.render_status(status())
    for absent in ("waiting", "paused", "outcome", "analysis", "timeline", "approved", "held", "BREAK-GLASS", "notify"):
        assert absent not in text


def test_status_shows_pause_outcome_and_approvals():
    text = cli.render_status(
        status(
            paused=True,
            outcome=Outcome.ROLLED_BACK,
            reason="kill switch pulled by bob: errors",
            approvals=[{"stage": "canary", "approver": "alice", "at": "2025-03-01T12:00:00+00:00"}],
        )
    )
    assert "releasectl resume release-gallery-2.0.0-abc123" in text
    assert "outcome   rolled_back: kill switch pulled by bob: errors" in text
    assert "approved  canary by alice" in text


def test_analysis_table_shows_value_threshold_and_result_per_metric():
    checks = (
        MetricCheck(metric=Metric.ERROR_RATE, value=0.2, threshold="<= 0.01", passed=False),
        MetricCheck(metric=Metric.P95_LATENCY_MS, value=None, threshold="<= 500", passed=None),
    )
    text = cli.render_status(status(last_analysis=analysis(*checks)))
    assert "analysis  fail at 12:30:05 (canary, 10% traffic, 240 canary requests)" in text
    assert table_row(text, "error_rate") == ["error_rate", "0.2", "<=", "0.01", "FAIL"]
    assert table_row(text, "p95_latency_ms") == ["p95_latency_ms", "-", "<=", "500", "no", "data"]
    assert "error_rate 0.2 above 0.01" in text


def test_timeline_shows_only_the_last_entries():
    entries = [
        TimelineEntry(at=f"2025-03-01T12:00:{second:02d}+00:00", phase=Phase.STAGING, message=f"event {second}")
        for second in range(12)
    ]
    text = cli.render_status(status(timeline=entries))
    assert f"(last {terminal.TIMELINE_SHOWN} of 12)" in text
    assert "event 3\n" not in text + "\n"
    assert "event 4" in text and text.endswith("event 11")
    assert "12:00:11  staging  event 11" in text


def test_result_names_the_breach_and_the_approvers():
    result = ReleaseResult(
        release_id="r",
        service="gallery",
        version="2.0.0",
        outcome=Outcome.ROLLED_BACK,
        reason="error_rate breached at 10% canary traffic",
        breach=MetricCheck(metric=Metric.ERROR_RATE, value=0.3, threshold="<= 0.01", passed=False),
        approvals=[{"stage": "canary", "approver": "alice", "at": "t"}],
    )
    assert cli.render_result(result).splitlines() == [
        "rolled_back: error_rate breached at 10% canary traffic",
        "breach: error_rate 0.3 (threshold <= 0.01)",
        "approvals: canary by alice",
    ]


def execution(release_id: str, **attributes: str) -> SimpleNamespace:
    """What `list_workflows` yields, as far as `releasectl list` reads it."""
    keys = {"service": search_attributes.SERVICE, "version": search_attributes.VERSION,
            "phase": search_attributes.PHASE, "outcome": search_attributes.OUTCOME}
    return SimpleNamespace(
        id=release_id,
        status=WorkflowExecutionStatus.RUNNING,
        start_time=datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc),
        typed_search_attributes=TypedSearchAttributes([SearchAttributePair(keys[name], value) for name, value in attributes.items()]),
    )


def test_release_list_reads_the_search_attributes_and_aligns_columns():
    rows = [
        cli.ReleaseRow.from_execution(execution("release-gallery-2.0.0-abc123", service="gallery", version="2.0.0", phase="canary")),
        cli.ReleaseRow.from_execution(execution("r2")),
    ]
    lines = cli.render_releases(rows).splitlines()
    assert lines[1].split() == ["release-gallery-2.0.0-abc123", "gallery", "2.0.0", "canary", "-", "running", "2025-03-01", "12:00:00"]
    assert lines[2].split()[1:5] == ["-", "-", "-", "-"]
    assert lines[0].index("service") == lines[1].index(" gallery ") + 1 == lines[2].index("-")


def test_empty_release_list_says_so():
    assert cli.render_releases([]) == "no releases found"


# --- arguments and payloads ----------------------------------------------------------------


def parse(*argv: str):
    return cli.build_parser().parse_args(argv)


def test_start_builds_the_request_from_env_and_inline_policy():
    args = parse("start", "gallery", "2.0.0", "--env", "LOG_LEVEL=debug", "--env", "URL=a=b", "--policy", '{"canary_weight": 5}', "--author", "ci")
    request = cli.build_request(args)
    assert request.env == {"LOG_LEVEL": "debug", "URL": "a=b"}
    assert request.policy.canary_weight == 5
    assert request.policy.steps == [25, 50, 75, 100]  # the rest stays at the ADR defaults
    assert request.author == "ci"


def test_start_reads_the_policy_from_a_file(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"required_approvals": ["production"]}))
    request = cli.build_request(parse("start", "gallery", "2.0.0", "--policy", f"@{policy}"))
    assert request.policy.required_approvals == [Stage.PRODUCTION]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "NOVALUE"], "--env 'NOVALUE': expected NAME=VALUE"),
        (["--policy", "{canary_weight: 5}"], "--policy is not valid JSON"),
        (["--policy", "@/nonexistent/policy.json"], "cannot read policy file /nonexistent/policy.json"),
    ],
)
def test_malformed_start_arguments_are_reported(argv, message):
    with pytest.raises(cli.CliError, match=message):
        cli.build_request(parse("start", "gallery", "2.0.0", *argv))


def test_an_invalid_request_is_refused_locally_naming_each_field():
    args = parse("start", "Gallery", "2.0.0", "--env", "DB_PASSWORD=hunter2", "--policy", '{"steps": [50, 40]}')
    with pytest.raises(InvalidRequest) as refused:
        cli.build_request(args)
    assert [problem.split(":")[0] for problem in refused.value.problems] == ["service", "env", "policy.steps"]


def test_approval_payload_is_what_the_workflow_parses():
    args = parse("approve", "r1", "--stage", "canary", "--approver", "alice", "--comment", "dashboards look fine")
    assert cli.approval_payload(args).model_dump(mode="json") == {
        "stage": "canary", "approver": "alice", "comment": "dashboards look fine"
    }


def test_approval_needs_a_known_stage_and_an_approver(capsys):
    with pytest.raises(SystemExit):
        parse("approve", "r1", "--stage", "staging", "--approver", "alice")
    with pytest.raises(SystemExit):
        parse("reject", "r1", "--stage", "canary")
    assert "--approver" in capsys.readouterr().err


def test_pause_defaults_to_the_local_user(monkeypatch):
    monkeypatch.setattr(cli, "local_user", lambda: "carol")
    assert cli.operator_payload(parse("pause", "r1")) == Operator(actor="carol", reason="")


def test_release_query_filters_by_service_and_state():
    assert cli.release_query("gallery", running=True) == (
        'WorkflowType="ReleaseWorkflow" AND ReleaseService="gallery" AND ExecutionStatus="Running"'
    )
    assert cli.release_query(None, running=False) == 'WorkflowType="ReleaseWorkflow"'


def test_release_query_refuses_a_service_that_would_change_the_query():
    with pytest.raises(cli.CliError):
        cli.release_query('gallery" OR WorkflowType="x', running=False)


# --- commands against a recording client -----------------------------------------------


class FakeHandle:
    def __init__(self, client: FakeClient, release_id: str):
        self.client, self.id = client, release_id

    async def signal(self, name: str, payload: Any) -> None:
        self.client.signals.append((self.id, name, payload))

    async def execute_update(self, name: str, payload: Any, result_type: type) -> Any:
        self.client.updates.append((self.id, name, payload))
        if self.client.error is not None:
            raise self.client.error
        return self.client.answers.pop(0)

    async def query(self, name: str, **_: Any) -> ReleaseStatus:
        if self.client.error is not None:
            raise self.client.error
        return self.client.statuses.pop(0)

    async def describe(self) -> SimpleNamespace:
        running = bool(self.client.statuses)
        return SimpleNamespace(status=WorkflowExecutionStatus.RUNNING if running else WorkflowExecutionStatus.COMPLETED)

    async def result(self) -> ReleaseResult:
        return self.client.result


class FakeClient:
    def __init__(self) -> None:
        self.signals: list[tuple[str, str, Any]] = []
        self.updates: list[tuple[str, str, Any]] = []
        self.answers: list[Any] = []
        self.started: list[tuple[str, Any, str]] = []
        self.summaries: list[str] = []
        self.statuses: list[ReleaseStatus] = []
        self.result: ReleaseResult | None = None
        self.error: Exception | None = None

    def get_workflow_handle(self, release_id: str, result_type: type) -> FakeHandle:
        return FakeHandle(self, release_id)

    async def start_workflow(self, workflow: str, request: Any, *, id: str, task_queue: str, static_summary: str) -> None:
        self.started.append((workflow, request, id))
        self.summaries.append(static_summary)


@pytest.fixture
def client(monkeypatch) -> FakeClient:
    fake = FakeClient()

    async def connect(settings: Any) -> FakeClient:
        return fake

    monkeypatch.setattr(cli, "connect", connect)
    monkeypatch.setattr(cli, "WATCH_INTERVAL_SECONDS", 0)
    return fake


@pytest.mark.parametrize(
    ("argv", "signal", "payload"),
    [
        (["reject", "r1", "--stage", "production", "--approver", "bob", "--comment", "no"], "reject",
         ApprovalDecision(stage="production", approver="bob", comment="no")),
        (["pause", "r1", "--actor", "carol", "--reason", "look"], "pause", Operator(actor="carol", reason="look")),
        (["resume", "r1", "--actor", "carol"], "resume", Operator(actor="carol")),
    ],
)
def test_each_steering_command_sends_its_signal_and_payload(client, capsys, argv, signal, payload):
    assert cli.run_cli(argv) == 0
    assert client.signals == [("r1", signal, payload)]
    assert capsys.readouterr().out == f"sent {signal} to r1\n"


def test_kill_goes_through_the_update_and_answers_once_traffic_is_on_stable(client, capsys):
    client.answers = [KillReceipt(outcome=None, seconds=0.4, message="all traffic on stable 1.0.0 after 0.4s")]
    assert cli.run_cli(["kill", "r1", "--reason", "errors", "--actor", "bob"]) == 0
    assert client.updates == [("r1", "submit_kill_switch", KillSwitch(reason="errors", actor="bob"))]
    assert capsys.readouterr().out == "all traffic on stable 1.0.0 after 0.4s\n"


def test_approve_goes_through_the_update_and_prints_the_workflow_answer(client, capsys):
    client.answers = [ApprovalReceipt(stage=Stage.PRODUCTION, counted=True, approvals=1, required=2, message="production: 1 of 2 approvals")]
    assert cli.run_cli(["approve", "r1", "--stage", "production", "--approver", "alice"]) == 0
    assert client.updates == [("r1", "submit_approval", ApprovalDecision(stage="production", approver="alice"))]
    assert capsys.readouterr().out == "production: 1 of 2 approvals\n"


def test_a_refused_approval_is_one_line_naming_why(client, capsys):
    refusal = ApplicationError("mallory may not approve production; allowed: alice, bob", type="ApprovalRefused")
    client.error = WorkflowUpdateFailedError(refusal)
    assert cli.run_cli(["approve", "r1", "--stage", "production", "--approver", "mallory"]) == cli.EXIT_ERROR
    assert capsys.readouterr().err == "releasectl: submit_approval refused: mallory may not approve production; allowed: alice, bob\n"


def test_break_glass_goes_through_its_update(client, capsys):
    client.answers = [BreakGlassRecord(actor="olivia", reason="INC-42", at="2026-07-04T12:00:00+00:00")]
    assert cli.run_cli(["break-glass", "r1", "--actor", "olivia", "--reason", "INC-42"]) == 0
    assert client.updates == [("r1", "submit_break_glass", BreakGlass(actor="olivia", reason="INC-42"))]
    assert capsys.readouterr().out == "submit_break_glass accepted by r1\n"


def test_start_sends_the_validated_request_and_prints_only_the_id(client, capsys):
    assert cli.run_cli(["start", "gallery", "2.0.0", "--id", "rel-1", "--env", "A=1"]) == 0
    [(workflow, request, release_id)] = client.started
    assert (workflow, release_id) == ("ReleaseWorkflow", "rel-1")
    assert request.env == {"A": "1"}
    assert capsys.readouterr().out == "rel-1\n"


def test_start_generates_an_id_naming_service_and_version(client):
    cli.run_cli(["start", "gallery", "2.0.0"])
    assert client.started[0][2].startswith("release-gallery-2.0.0-")


def test_an_invalid_request_starts_nothing_and_fails_with_one_line(client, capsys):
    assert cli.run_cli(["start", "gallery", "not a version"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert client.started == []
    assert err.startswith("releasectl: invalid release request: version:") and err.count("\n") == 1


def test_an_unreachable_server_is_one_line_not_a_traceback(monkeypatch, capsys):
    async def refuse(settings: Any) -> None:
        raise RuntimeError("Failed client connect: Connection refused")

    monkeypatch.setattr(cli, "connect", refuse)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.example:7233")
    assert cli.run_cli(["status", "r1"]) == cli.EXIT_ERROR
    assert capsys.readouterr().err == (
        "releasectl: cannot reach Temporal at temporal.example:7233: Failed client connect: Connection refused\n"
    )


def test_an_unknown_release_is_one_line(client, capsys):
    client.error = RPCError("workflow not found for ID: r9", RPCStatusCode.NOT_FOUND, b"")
    assert cli.run_cli(["status", "r9"]) == cli.EXIT_ERROR
    assert capsys.readouterr().err == "releasectl: workflow not found for ID: r9\n"


def test_a_query_nobody_answers_hints_at_the_worker(client, capsys):
    client.error = RPCError("Timeout expired", RPCStatusCode.DEADLINE_EXCEEDED, b"")
    cli.run_cli(["status", "r1"])
    assert "is a release worker running" in capsys.readouterr().err


def test_status_json_is_the_query_answer(client, capsys):
    client.statuses = [status(canary_weight=25)]
    assert cli.run_cli(["status", "r1", "--json"]) == 0
    assert ReleaseStatus.model_validate_json(capsys.readouterr().out) == status(canary_weight=25)


def test_watch_redraws_only_changes_then_prints_the_result_and_exits_2_when_not_promoted(client, capsys):
    client.statuses = [status(canary_weight=10), status(canary_weight=10), status(canary_weight=50)]
    client.result = ReleaseResult(release_id="r1", service="gallery", version="2.0.0", outcome=Outcome.ROLLED_BACK, reason="killed")
    assert cli.run_cli(["watch", "r1"]) == cli.EXIT_NOT_PROMOTED
    out = capsys.readouterr().out
    assert out.count("phase     canary") == 2  # the unchanged second status is not printed again
    assert out.index("10% on 2.0.0") < out.index("50% on 2.0.0") < out.index("rolled_back: killed")


def test_revert_builds_a_revert_request_for_the_newest_version_by_default():
    request = cli.build_revert(parse("revert", "gallery", "--reason", "checkout broken", "--actor", "carol"))
    assert request.revert is not None and request.revert.actor == "carol" and request.version is None
    assert cli.new_release_id(request).startswith("revert-gallery-previous-")
    to = cli.build_revert(parse("revert", "gallery", "--to", "1.4.0", "--reason", "r"))
    assert to.version == "1.4.0" and cli.new_release_id(to).startswith("revert-gallery-1.4.0-")


def test_revert_needs_a_reason_and_a_valid_version(capsys):
    with pytest.raises(SystemExit):
        parse("revert", "gallery")
    with pytest.raises(InvalidRequest, match="version"):
        cli.build_revert(parse("revert", "gallery", "--to", "../etc", "--reason", "r"))


def test_result_of_a_revert_says_from_what_to_what_and_how():
    result = ReleaseResult(
        release_id="revert-gallery-1.0.0-abc",
        service="gallery",
        version="1.0.0",
        outcome=Outcome.REVERTED,
        reason="1.0.0 is stable again",
        stable_version="1.0.0",
        revert=RevertRecord(actor="carol", reason="checkout", from_version="1.1.0", to_version="1.0.0", warm=True, at="t"),
    )
    assert "1.1.0 -> 1.0.0 (warm, a routing change) by carol: checkout" in cli.render_result(result)


# --- holds, inconclusive analyses, summaries (issue #14) ---------------------------------


def test_status_names_the_gate_holding_and_that_live_activity_is_rechecked():
    window = GateHold(gate="window", change="route 25% to 2.0.0", reason="frozen: launch", until="2026-07-07T10:00:00+00:00")
    live = GateHold(gate="live_activity", change="route 10% to 2.0.0", reason="2 active_uploads")
    assert "held      route 25% to 2.0.0: frozen: launch until 2026-07-07T10:00:00+00:00 (deployment window)" in (
        cli.render_status(status(hold=window))
    )
    assert "held      route 10% to 2.0.0: 2 active_uploads (live activity, re-checked until it clears)" in (
        cli.render_status(status(hold=live))
    )


def test_an_inconclusive_analysis_says_inconclusive_once():
    check = MetricCheck(metric=Metric.ERROR_RATE, value=None, threshold="<= 0.01", passed=None, reason="no samples")
    inconclusive = analysis(check).model_copy(
        update={"verdict": Verdict.INCONCLUSIVE, "summary": "inconclusive: no data for error_rate (no samples)"}
    )
    entry = TimelineEntry(
        at="2025-03-01T12:30:05+00:00", phase=Phase.CANARY, message="analysis inconclusive: inconclusive: too few requests"
    )
    text = cli.render_status(status(last_analysis=inconclusive, timeline=[entry]))
    assert "  no data for error_rate (no samples)" in text
    assert "analysis inconclusive: too few requests" in text
    assert "inconclusive: inconclusive" not in text and "  inconclusive: no data" not in text


def test_status_json_is_pretty_for_scripts(client, capsys):
    client.statuses = [status(canary_weight=25)]
    assert cli.run_cli(["status", "r1", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('{\n  "release_id": "release-gallery-2.0.0-abc123",\n') and '\n  "canary_weight": 25,\n' in out


def test_start_gives_the_temporal_ui_a_summary_of_what_goes_where(client, capsys):
    assert cli.run_cli(["start", "gallery", "2.0.0", "--id", "r1"]) == 0
    assert client.summaries == ["release gallery 2.0.0 on local"]


def test_summaries_of_a_revert_and_a_train():
    revert = cli.build_revert(parse("revert", "gallery", "--reason", "broken", "--actor", "carol"))
    assert terminal.workflow_summary(revert) == "revert gallery to the previous version on local"
    train = TrainRequest.model_validate(
        {"train": "spring", "releases": [{"service": "gallery", "version": "2.0.0"}, {"service": "api", "version": "1.1.0"}]}
    )
    assert terminal.workflow_summary(train) == "train spring on local: gallery 2.0.0, api 1.1.0"


def test_served_shares_name_the_router_answering_for_no_version():
    assert terminal.render_served({"1.0.0": 90, "2.0.0": 10}) == "1.0.0=90% 2.0.0=10%"
    assert terminal.render_served({"router": 4}) == "no version (router answered)=100%"
    assert terminal.render_served({}) == "no requests"


def test_demo_progress_line_shows_the_hold_and_the_router_answering_itself():
    from pipeline.local import demo

    load = SimpleNamespace(served_since=lambda since: {"router": 1, "1.0.0": 3})
    hold = GateHold(gate="live_activity", change="route 10% to 2.0.0", reason="2 active_uploads")
    line = demo.progress_line(status(hold=hold), load)
    assert "| held: route 10% to 2.0.0: 2 active_uploads (live activity, re-checked until it clears) |" in line
    assert line.endswith("| served (last 3 s): 1.0.0=75% no version (router answered)=25%")
