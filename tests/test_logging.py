"""No credential reaches a log line, and workflow code can log through the worker's
configuration inside the Temporal sandbox, with either renderer. The probes run in
processes of their own: what they write to stderr is exactly what a worker would."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.logging import REDACTED, Redactor, secret_values

REPO = Path(__file__).resolve().parent.parent
SECRET = "SECRETVALUE"
HOOK_PATH_SECRET = "T000B000XOXBPATHSECRET"
PROBE_TIMEOUT_SECONDS = 120


def test_userinfo_and_query_values_in_urls_are_redacted():
    line = "HTTP Request: POST https://bot:hunter22@hooks.example.com/services/T0?token=abc123&key=k9#top done"
    assert Redactor().redact(line) == (
        f"HTTP Request: POST https://{REDACTED}@hooks.example.com/services/T0?token={REDACTED}&key={REDACTED}#top done"
    )


def test_a_url_without_credentials_is_left_alone():
    line = "GET http://127.0.0.1:8001/api/http/routers/gallery@file answered 200"
    assert Redactor().redact(line) == line


def test_secret_values_are_redacted_in_nested_values_and_objects():
    redact = Redactor(["s3cr3t-value", "no"])
    event = {"event": "boom", "headers": {"auth": "Bearer s3cr3t-value"}, "args": ("x", ValueError("s3cr3t-value"))}
    assert redact(None, "info", event) == {
        "event": "boom",
        "headers": {"auth": f"Bearer {REDACTED}"},
        "args": ["x", f"ValueError('{REDACTED}')"],
    }
    assert redact.redact("no, not that") == "no, not that"  # too short to be worth hiding


def test_secret_values_are_the_hinted_variables_and_the_gates_webhook_urls(tmp_path):
    gates = tmp_path / "gates.json"
    gates.write_text(json.dumps({"defaults": {"webhooks": [{"name": "team", "url_env": "TEAM_HOOK_URL"}]}}))
    environ = {
        "PIPELINE_GATES_FILE": str(gates),
        "TEAM_HOOK_URL": "https://hooks.example.com/T000/B000/xyz",
        "TEMPORAL_API_KEY": "key-123456",
        "DB_PASSWORD": "pw-123456",
        "PIPELINE_PROMETHEUS_URL": "http://127.0.0.1:9090",
    }
    assert sorted(secret_values(environ)) == ["https://hooks.example.com/T000/B000/xyz", "key-123456", "pw-123456"]
    gates.write_text("{not json")
    assert sorted(secret_values(environ)) == ["key-123456", "pw-123456"]


def run_probe(module: str, *arguments: str, env: dict[str, str] | None = None) -> str:
    probe = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS,
    )
    assert probe.returncode == 0, probe.stderr
    return probe.stdout + probe.stderr


def webhook_env(tmp_path: Path) -> dict[str, str]:
    """A gates file naming TEAM_HOOK_URL, whose value carries its secret in the path, as Slack's do."""
    gates = tmp_path / "gates.json"
    gates.write_text(json.dumps({"defaults": {"webhooks": [{"name": "team", "url_env": "TEAM_HOOK_URL"}]}}))
    return {"PIPELINE_GATES_FILE": str(gates), "TEAM_HOOK_URL": f"https://hooks.example.com/services/{HOOK_PATH_SECRET}"}

def test_database_url_variables_of_the_databases_file_are_secret(tmp_path):
    databases = tmp_path / "databases.json"
    databases.write_text(json.dumps({"services": {"gallery": {
        "production": {"url_env": "GALLERY_PRODUCTION_DB"}, "staging": {"url": "postgresql://staging/db"}}}}))
    environ = {"PIPELINE_DATABASES_FILE": str(databases), "GALLERY_PRODUCTION_DB": "host=db user=app password=hunter2"}
    assert secret_values(environ) == ["host=db user=app password=hunter2"]
    assert "hunter2" not in Redactor(secret_values(environ)).redact("connecting to host=db user=app password=hunter2")



@pytest.mark.parametrize("renderer", ["json", "console"])
def test_httpx_requests_are_not_logged_and_errors_are_redacted(renderer, tmp_path):
    output = run_probe("tests.helpers.logging_probe", renderer, "--token", SECRET, env=webhook_env(tmp_path))

    assert "webhook failed" in output and "500 Internal Server Error" in output
    assert "HTTP Request" not in output
    assert SECRET not in output and HOOK_PATH_SECRET not in output


@pytest.mark.parametrize("renderer", ["json", "console"])
def test_request_urls_are_redacted_when_httpx_logs_them(renderer, tmp_path):
    output = run_probe("tests.helpers.logging_probe", renderer, "--token", SECRET, "--loud-httpx", env=webhook_env(tmp_path))

    assert "HTTP Request: POST" in output and f"token={REDACTED}" in output
    assert SECRET not in output and HOOK_PATH_SECRET not in output


@pytest.mark.parametrize("renderer", ["json", "console"])
def test_workflow_code_logs_through_the_worker_configuration(renderer):
    output = run_probe("tests.helpers.sandbox_logging_probe", renderer)

    assert "workflow says hello" in output
    assert "Failed activation on workflow LoggingWorkflow" in output
    assert "workflow task failed on purpose" in output
    assert "Logging error" not in output
    assert "RestrictedWorkflowAccessError" not in output
