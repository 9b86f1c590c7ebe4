"""Worker settings from the environment: the workflow cache holds two workflows per
release (the release and its service lock), and a setting that cannot be used stops
the worker before it connects, naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workers.main import CACHE_ENV, DEFAULT_CACHED_WORKFLOWS, WorkerConfigError, max_cached_workflows


def test_the_cache_defaults_to_room_for_a_thousand_releases_and_their_locks(monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert max_cached_workflows() == DEFAULT_CACHED_WORKFLOWS == 2_000
    monkeypatch.setenv(CACHE_ENV, "500")
    assert max_cached_workflows() == 500


@pytest.mark.parametrize("value", ["0", "-1", "lots", "1.5"])
def test_a_cache_size_that_is_not_a_positive_number_is_refused(monkeypatch, value):
    monkeypatch.setenv(CACHE_ENV, value)
    with pytest.raises(WorkerConfigError, match=CACHE_ENV):
        max_cached_workflows()


def test_the_worker_exits_2_before_connecting_on_a_bad_setting():
    env = {**os.environ, CACHE_ENV: "lots", "TEMPORAL_ADDRESS": "127.0.0.1:9", "PIPELINE_LOG_FORMAT": "json"}
    worker = subprocess.run([sys.executable, "-m", "workers.main"], env=env, capture_output=True, text=True, timeout=60)
    assert worker.returncode == 2
    assert "worker not started" in worker.stdout + worker.stderr and CACHE_ENV in worker.stdout + worker.stderr
