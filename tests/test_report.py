"""`releasectl report`: the report of recorded histories (tests/histories/) holds the
facts of each release; the HTML renders in headless Chromium (Debian's package, driven
by Playwright) with its plots loaded; bad input is one clear line; and on the real dev
server the report of a release with no worker at all says it is running."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from pipeline import cli
from pipeline.cli_input import CliError
from pipeline.report.command import render
from pipeline.report.html import render_html
from pipeline.report.model import report_of
from tests.helpers.fakes import FakeWorld
from workflows import ALL as WORKFLOWS
from workflows.release import continuation

HISTORIES = Path(__file__).parent / "histories"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed (scripts/system-deps.sh installs it)"
)


def events(name: str) -> dict[str, Any]:
    return json.loads((HISTORIES / name).read_text())


def history(name: str, raw: dict[str, Any] | None = None) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"history-{Path(name).stem}", raw or events(name))


def report_json(name: str, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    return json.loads(render(history(name, raw), "json"))


# --- facts of recorded releases ----------------------------------------------------------


def test_promoted_release_has_its_approvals_traffic_steps_and_bake_analyses():
    report = report_json("promoted.json")
    assert report["running"] is False and report["outcome"] == "promoted"
    assert [(a["stage"], a["approver"]) for a in report["approvals"]] == [
        ("canary", "alice"),
        ("production", "alice"),
        ("production", "bob"),
    ]
    weights = [point["weight"] for point in report["traffic"]]
    assert weights[:6] == [0, 10, 25, 50, 75, 100]
    phases = [entry["phase"] for entry in report["phases"]]
    assert phases[-3:] == ["finalize", "bake", "done"]
    assert {a["phase"] for a in report["analyses"]} >= {"canary", "progressive_shift", "bake"}
    assert all(a["verdict"] == "pass" for a in report["analyses"])
    assert report["analyses"][-1]["baseline"]["score"] == 100.0
    assert report["breach"] is None


def test_rolled_back_release_names_the_breach_and_the_failing_analysis():
    report = report_json("rolled_back.json")
    assert report["outcome"] == "rolled_back"
    assert report["breach"]["metric"] == "error_rate" and report["breach"]["value"] == 0.2
    last = report["analyses"][-1]
    assert last["verdict"] == "fail" and last["decision"].startswith("rollback: error_rate = 0.2 breached")
    assert [point["weight"] for point in report["traffic"]][-2:] == [0, 0]
    assert "rollback" in [entry["phase"] for entry in report["phases"]]


def test_gated_release_shows_each_hold_why_and_until_when():
    report = report_json("held_then_promoted.json")
    window, live = report["holds"]
    assert window["gate"] == "deployment window" and window["why"] == "frozen: recording freeze"
    assert window["until"].startswith("2026-11-28T09:05:08")
    assert live["gate"] == "live activity" and live["why"] == "2 active_uploads" and live["until"] is None
    assert live["cleared_at"] > live["at"]  # the next check found no uploads
    texts = [event["text"] for event in report["timeline"]]
    assert "held by deployment window: frozen: recording freeze until 2026-11-28 09:05:08" in texts
    assert "held by live activity: 2 active_uploads (re-checked until it clears)" in texts
    assert "live activity clear: the hold ends" in texts
    assert any(text.startswith("update submit_break_glass from ") for text in texts)


def test_a_rollback_during_bake_takes_the_traffic_back_from_the_promoted_version():
    report = report_json("rolled_back_in_bake.json")
    assert [point["weight"] for point in report["traffic"]][-3:] == [100, 0, 0]
    assert report["analyses"][-1]["phase"] == "bake" and report["analyses"][-1]["verdict"] == "fail"
    assert "reverted to 1.0.0" in [event["text"] for event in report["timeline"]]


def test_rejected_and_invalid_releases_say_who_and_what():
    rejected = report_json("rejected.json")
    assert rejected["reason"] == "rejected at canary by dave: no"
    assert "signal reject from dave (stage canary): no" in [event["text"] for event in rejected["timeline"]]
    invalid = report_json("invalid_request.json")
    assert invalid["problem"].startswith("invalid release request: service: Field required")
    assert invalid["analyses"] == [] and invalid["timeline"][0]["text"].startswith(
        "started with a request that is not valid"
    )


def test_markdown_has_every_section_and_the_breach():
    text = render(history("rolled_back.json"), "md")
    for heading in (
        "# Release report: history-rolled_back",
        "## Timeline",
        "## Approvals",
        "## Holds",
        "## Signals ignored and updates refused",
        "## Analyses",
        "## Baseline comparison",
    ):
        assert heading in text
    assert "- **breach**: error_rate: 0.2 (<= 0.01) FAIL" in text
    assert "| 1 | 07:06:14 | canary | 10% | fail | 0.2 (<= 0.01) FAIL | 120 (<= 500) pass |" in text


def test_ignored_signals_are_listed_with_why():
    raw = events("rolled_back.json")
    approve = next(e for e in raw["events"] if e.get("workflowExecutionSignaledEventAttributes"))
    unknown, malformed = copy.deepcopy(approve), copy.deepcopy(approve)
    unknown["workflowExecutionSignaledEventAttributes"]["signalName"] = "aprove"
    payload = malformed["workflowExecutionSignaledEventAttributes"]["input"]["payloads"][0]
    payload["data"] = base64.b64encode(json.dumps({"stage": "canary"}).encode()).decode()
    index = raw["events"].index(approve)
    unknown["eventId"], malformed["eventId"] = "9001", "9002"
    raw["events"][index + 1 : index + 1] = [unknown, malformed]
    ignored = report_json("rolled_back.json", raw)["ignored"]
    assert [(i["name"], i["why"]) for i in ignored] == [
        ("aprove", "no such signal"),
        ("approve", "malformed payload (1 problems)"),
    ]


def test_a_running_release_is_reported_so_far():
    raw = events("promoted.json")
    raw["events"] = raw["events"][:300]
    report = report_of(history("promoted.json", raw))
    assert report.running and report.outcome is None and report.ended_at is None
    assert "RUNNING: report so far" in render(history("promoted.json", raw), "md")
    assert report.traffic[-1].at == report.last_event_at


# --- bad input ---------------------------------------------------------------------------


def test_a_workflow_that_is_not_a_release_is_refused():
    with pytest.raises(CliError, match="history-promoted is not a release: it is a ReleaseTrainWorkflow"):
        render(WorkflowHistory.from_json("history-promoted", events("trains/promoted.json")), "md")


def test_a_history_this_code_cannot_read_names_the_event():
    raw = events("rolled_back.json")
    completed = next(e for e in raw["events"] if e.get("activityTaskCompletedEventAttributes"))
    completed["activityTaskCompletedEventAttributes"]["result"]["payloads"][0]["data"] = base64.b64encode(
        b"{not json"
    ).decode()
    with pytest.raises(CliError, match=rf"event {completed['eventId']} \(activity_task_completed\) cannot be read"):
        render(history("rolled_back.json", raw), "json")


@pytest.mark.parametrize("recorded", ["rolled_back.json", "before-light/rolled_back.json"])
def test_an_activity_result_of_another_shape_names_its_event(recorded):
    """Valid JSON that today's models do not accept: an observation from other code,
    read as a local activity (today) or as an ordinary one (before-light)."""
    raw = events(recorded)
    payload, event_id = observation_payload(raw)
    payload["data"] = base64.b64encode(json.dumps({"window": "60s"}).encode()).decode()
    with pytest.raises(CliError, match=rf"event {event_id} \(observe_metrics\): its result cannot be read"):
        render(history(recorded, raw), "md")


def observation_payload(raw: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The first observation's result payload in a history's JSON, and the event the report names."""
    scheduled = {
        e["eventId"]: e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in raw["events"]
        if e.get("activityTaskScheduledEventAttributes")
    }
    for event in raw["events"]:
        completed = event.get("activityTaskCompletedEventAttributes", {})
        if scheduled.get(completed.get("scheduledEventId")) == "observe_metrics":
            return completed["result"]["payloads"][0], completed["scheduledEventId"]
        details = event.get("markerRecordedEventAttributes", {}).get("details", {})
        if "result" in details and b"observe_metrics" in base64.b64decode(details["data"]["payloads"][0]["data"]):
            return details["result"]["payloads"][0], event["eventId"]
    raise AssertionError("no observation in the history")


# --- the HTML in a browser ---------------------------------------------------------------


@needs_chromium
async def test_html_report_renders_in_headless_chromium_with_its_plots(tmp_path):
    from playwright.async_api import async_playwright

    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(report_of(history("rolled_back.json"))))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page()
            await page.goto(page_file.as_uri(), timeout=30_000)
            assert await page.title() == "Release report: history-rolled_back"
            assert await page.inner_text("#state") == "ROLLED BACK"
            summary = await page.inner_text("#summary")
            assert "error_rate: 0.2 (<= 0.01) FAIL" in summary
            assert "canary approved by alice: looks good" in await page.inner_text("#timeline")
            images = await page.evaluate(
                "Array.from(document.images).map(i => ({id: i.id, loaded: i.complete && i.naturalWidth > 0}))"
            )
        finally:
            await browser.close()
    assert {image["id"] for image in images} == {"plot-traffic", "plot-error_rate", "plot-p95_latency_ms"}
    assert all(image["loaded"] for image in images)


# --- against the real dev server, with no worker -----------------------------------------


async def run_releasectl(monkeypatch, address: str, *argv: str) -> int:
    monkeypatch.setenv("TEMPORAL_ADDRESS", address)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    return await cli.run(cli.build_parser().parse_args(list(argv)))


async def test_report_of_a_release_with_no_worker_and_of_an_unknown_id(dev_server, monkeypatch, capsys, tmp_path):
    client = dev_server.client
    release_id = f"release-report-{uuid.uuid4().hex[:6]}"
    request = {"service": "gallery", "version": "3.1.0", "target": "local", "author": "carol"}
    await client.start_workflow("ReleaseWorkflow", request, id=release_id, task_queue=f"nobody-{release_id}")
    address = client.service_client.config.target_host

    output = tmp_path / "report.md"
    assert await run_releasectl(monkeypatch, address, "report", release_id, "--format", "md", "-o", str(output)) == 0
    text = output.read_text()
    assert "**RUNNING**" in text and "- **service**: gallery 3.1.0 on local" in text
    assert "release of gallery 3.1.0 on local requested by carol" in text

    with pytest.raises(CliError, match="no workflow with id release-nobody in namespace default"):
        await run_releasectl(monkeypatch, address, "report", "release-nobody")


async def test_report_of_a_release_that_continued_as_new_covers_every_run(dev_server, monkeypatch, tmp_path):
    """Continue-as-new lowered to 60 events, as tests/test_safety.py does, so a short
    release crosses it; the report follows the runs back to the first."""
    monkeypatch.setattr(continuation, "CONTINUE_AS_NEW_EVENTS", 60)
    client, queue = dev_server.client, f"report-{uuid.uuid4().hex[:6]}"
    release_id = f"release-report-{uuid.uuid4().hex[:6]}"
    policy = {
        "analysis_interval_seconds": 1,
        "canary_duration_seconds": 3,
        "steps": [50, 100],
        "step_interval_seconds": 2,
        "required_approvals": [],
        "bake_seconds": 2,
        "retire_delay_seconds": 1,
    }
    request = {"service": f"gallery-{uuid.uuid4().hex[:6]}", "version": "2.0.0", "target": "local", "policy": policy}
    async with Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=FakeWorld().activities(),
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow("ReleaseWorkflow", request, id=release_id, task_queue=queue)
        async with asyncio.timeout(120):
            await handle.result()

    output = tmp_path / "report.json"
    address = client.service_client.config.target_host
    assert await run_releasectl(monkeypatch, address, "report", release_id, "--format", "json", "-o", str(output)) == 0
    report = json.loads(output.read_text())
    assert report["runs"] >= 2 and report["outcome"] == "promoted"
    assert report["phases"][1]["phase"] == "staging"  # from the first run
    assert [point["weight"] for point in report["traffic"]][1:4] == [10, 50, 100]
