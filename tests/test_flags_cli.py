"""`releasectl flags` (plain tests: releasectl runs its own event loop): list, show, off and history straight on the local flags file,
with no Temporal server anywhere (TEMPORAL_ADDRESS points at a closed port), and a bad
rollout file refused before anything connects."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.flags.changes import apply_stage
from pipeline.flags.local_file import LocalFileStore, flags_file
from pipeline.models.flags import FlagRef, FlagSetting, FlagStageRequest

FLAG = "new-gallery-layout"


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> LocalFileStore:
    monkeypatch.setenv("PIPELINE_LOCAL_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")  # nothing listens: the store commands must not need it
    return LocalFileStore(flags_file(tmp_path, "production"), "production")


def rolled_out(store: LocalFileStore, percentage: int = 25) -> None:
    asyncio.run(apply_stage(store, FlagStageRequest(
        ref=FlagRef(flag=FLAG), variants={"on": True, "off": False}, actor="rollout flag-rollout-1",
        setting=FlagSetting(segments=["beta-photographer"], percentage=percentage), rollout_id="flag-rollout-1",
        reason="serve the flag to 25% of users"), "2026-11-28T04:00:00+00:00"))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what came before (the setup's logs) is not the command's
    code = cli.run_cli(["flags", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_shows_whom_each_flag_serves(store, capsys):
    rolled_out(store)
    code, out, _ = run(capsys, "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["FLAG", "SERVING", "WHO", "ON/OFF", "REVISION", "CHANGED", "BY"]
    assert row.split()[:2] == [FLAG, "partial"] and "beta-photographer + 25% of users" in row


def test_off_writes_the_store_directly_and_is_recorded(store, capsys):
    rolled_out(store)
    code, out, _ = run(capsys, "off", FLAG, "--reason", "errors on the new layout", "--actor", "ana")
    assert code == 0 and "is off for everyone in production (was beta-photographer + 25% of users)" in out
    document = json.loads(store.path.read_text())
    assert document["flags"][FLAG]["defaultVariant"] == "off" and "targeting" not in document["flags"][FLAG]
    code, out, _ = run(capsys, "off", FLAG, "--reason", "again", "--actor", "bob")
    assert code == 0 and "was already off (turned off by ana: errors on the new layout)" in out
    code, out, _ = run(capsys, "history", FLAG)
    lines = out.splitlines()
    assert len(lines) == 2 and "define" in lines[0] and "(flag-rollout-1)" in lines[0]
    assert "kill" in lines[1] and "by ana: errors on the new layout" in lines[1]


def test_show_prints_the_state_and_flagd_definition(store, capsys):
    rolled_out(store, 50)
    code, out, _ = run(capsys, "show", FLAG)
    assert code == 0 and "serving: partial (beta-photographer + 50% of users)" in out and '"fractional"' in out
    code, out, _ = run(capsys, "show", FLAG, "--json")
    assert json.loads(out)["setting"] == {"segments": ["beta-photographer"], "percentage": 50}


def test_an_unknown_flag_or_a_broken_file_is_one_error_line_and_nothing_changes(store, capsys):
    code, _, err = run(capsys, "off", "nope", "--reason", "x")
    assert code == 1 and err == f"releasectl: flag: 'nope' is not defined in the production store ({store.path})\n"
    rolled_out(store)
    store.path.write_text('{"flags": ')
    code, _, err = run(capsys, "off", FLAG, "--reason", "x")
    assert code == 1 and "production.flagd.json: not JSON: Expecting value at line 1 column 11" in err
    assert store.path.read_text() == '{"flags": '
    code, _, err = run(capsys, "list", "--env", "Bad Env")
    assert code == 1 and err.startswith("releasectl: environment: String should match pattern")


def test_a_bad_rollout_file_is_refused_naming_the_field(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    path = tmp_path / "rollout.json"
    path.write_text(json.dumps({"flag": FLAG, "service": "gallery", "steps": [{"percentage": 150}]}))
    code, _, err = run(capsys, "rollout", "start", str(path))
    assert code == 1 and "steps.0.percentage: Input should be less than or equal to 100" in err
