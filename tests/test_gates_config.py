"""The gates file and the approval rules, as plain functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipeline.decisions import approvals
from pipeline.gates import BUILT_IN_SOURCE, GatesConfigError, load_gates_config, release_gates
from pipeline.models import Approval, ApprovalDecision, GatesConfig, ReleaseGates, Stage, StageGate

CONFIG = {
    "groups": {"sre": ["carol", "dan"], "leads": ["alice"]},
    "defaults": {
        "approvals": {"production": {"users": ["bob"], "groups": ["sre"], "min_approvals": 2, "forbid_author": True}},
        "break_glass": {"groups": ["leads"]},
        "webhooks": [{"name": "team", "url_env": "TEAM_HOOK_URL", "events": ["rollback", "finished"]}],
    },
    "services": {"shoot-service": {"approvals": {}}},
}


def test_groups_expand_to_people_and_services_override_defaults_field_by_field():
    config = GatesConfig.model_validate(CONFIG)
    gallery = release_gates(config, "gallery", "gates.json")
    shoot = release_gates(config, "shoot-service", "gates.json")

    assert gallery.approvals[Stage.PRODUCTION].approvers == ["bob", "carol", "dan"]
    assert gallery.approvals[Stage.PRODUCTION].min_approvals == 2
    assert gallery.break_glass == ["alice"] and gallery.webhooks == {"team": ["rollback", "finished"]}
    assert shoot.approvals == {} and shoot.break_glass == ["alice"] and shoot.webhooks == gallery.webhooks


def test_release_gates_never_carry_a_webhook_url(monkeypatch):
    monkeypatch.setenv("TEAM_HOOK_URL", "https://hooks.slack.com/services/T000/B000/SECRET")
    gates = release_gates(GatesConfig.model_validate(CONFIG), "gallery", "gates.json")
    assert "SECRET" not in gates.model_dump_json() and "TEAM_HOOK_URL" not in gates.model_dump_json()


def test_an_unknown_group_is_a_configuration_error():
    with pytest.raises(ValueError, match="services.gallery names unknown groups: qa"):
        GatesConfig.model_validate({"services": {"gallery": {"approvals": {"canary": {"groups": ["qa"]}}}}})


def test_the_gates_file_is_read_at_each_use_and_bad_files_are_named(tmp_path):
    path = tmp_path / "gates.json"
    path.write_text(json.dumps(CONFIG))
    config, source = load_gates_config({"PIPELINE_GATES_FILE": str(path)})
    assert source == str(path) and "sre" in config.groups

    path.write_text(json.dumps({"defaults": {"calendar": {"timezone": "Mars/Olympus"}}}))
    with pytest.raises(GatesConfigError, match=r"invalid gates file .*defaults.calendar.timezone: unknown time zone 'Mars/Olympus'"):
        load_gates_config({"PIPELINE_GATES_FILE": str(path)})
    with pytest.raises(GatesConfigError, match="cannot read the gates file"):
        load_gates_config({"PIPELINE_GATES_FILE": str(tmp_path / "missing.json")})


def test_without_a_file_the_built_in_gates_read_the_sample_service_live_activity():
    config, source = load_gates_config({})
    assert source == BUILT_IN_SOURCE
    assert config.for_service("gallery").live_activity.url == "{stable}/platform/activity"
    assert config.for_service("gallery").live_activity.targets == ["local"]
    assert config.for_service("other").live_activity is None


GATE = StageGate(anyone=False, approvers=["alice", "bob"], groups=["sre"], min_approvals=2, forbid_author=True)


@pytest.mark.parametrize(
    ("approver", "stage", "pending", "author", "refusal"),
    [
        ("alice", "production", Stage.PRODUCTION, "zed", None),
        ("mallory", "production", Stage.PRODUCTION, "zed", "mallory may not approve production; allowed: alice, bob (groups: sre)"),
        ("alice", "production", Stage.PRODUCTION, "alice", "alice is the release's author and may not approve it"),
        ("alice", "canary", Stage.PRODUCTION, "zed", "the canary approval is not pending (the pending approval is production)"),
        ("alice", "production", None, "zed", "the production approval is not pending (no approval is pending)"),
    ],
)
def test_approval_refusals(approver, stage, pending, author, refusal):
    decision = ApprovalDecision(stage=stage, approver=approver)
    assert approvals.refusal(decision, GATE, pending, author) == refusal


def test_distinct_people_count_towards_the_two_person_rule():
    given = [Approval(stage=Stage.PRODUCTION, approver=name, at="t") for name in ("alice", "alice")]
    assert approvals.approvers_of(Stage.PRODUCTION, given) == ["alice"]
    assert not approvals.approved(GATE, Stage.PRODUCTION, given)
    assert approvals.approved(GATE, Stage.PRODUCTION, [*given, Approval(stage=Stage.PRODUCTION, approver="bob", at="t")])


def test_a_request_can_add_approval_stages_but_not_remove_configured_ones():
    gates = ReleaseGates(approvals={Stage.PRODUCTION: GATE}, source="x")
    assert approvals.stage_required(gates, [], Stage.PRODUCTION)
    assert approvals.stage_required(gates, [Stage.CANARY], Stage.CANARY)
    assert not approvals.stage_required(gates, [], Stage.CANARY)
    assert approvals.stage_gate(gates, Stage.CANARY).anyone


def test_break_glass_needs_a_named_person():
    assert approvals.break_glass_refusal("olivia", ["olivia"]) is None
    assert approvals.break_glass_refusal("mallory", ["olivia"]) == "mallory may not break glass; allowed: olivia"
    assert "no one may break glass" in approvals.break_glass_refusal("olivia", [])


def test_a_worker_with_a_broken_gates_file_refuses_to_start(tmp_path):
    path = tmp_path / "gates.json"
    path.write_text(json.dumps({"defaults": {"approvals": {"canary": {"groups": ["qa"]}}}}))
    worker = subprocess.run(
        [sys.executable, "-m", "workers.main"],
        env={**os.environ, "PIPELINE_GATES_FILE": str(path), "TEMPORAL_ADDRESS": "127.0.0.1:1"},
        capture_output=True, text=True, timeout=60,
    )
    assert worker.returncode == 2
    assert "defaults names unknown groups: qa" in worker.stderr
