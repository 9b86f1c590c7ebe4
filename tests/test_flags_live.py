"""Feature flags on the real local stack: the Temporal dev server, a worker process,
Traefik, a local Prometheus and sample-gallery processes that evaluate their flags
through OpenFeature's flagd file resolver. Flags are written to the local flag store
(the flagd file the services read) as the pipeline writes them; every count is taken
through the router, per user (X-User-Id), from the variant each reply names.

The tests share one stack and one gallery installation, and run in order."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle

from pipeline.flags.changes import read_flag
from pipeline.flags.local_file import flags_file
from pipeline.gallery.flags import FAULTS_VARIABLE, FLAGS_VARIABLE, LAYOUT_FLAG
from pipeline.http import http_client
from pipeline.local.devstack import Stack, local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.local.prometheus import find_prometheus
from pipeline.models import Outcome
from pipeline.models.flag_rollout import FeatureRolloutStatus
from pipeline.models.flags import FlagOutcome, Serving
from tests.helpers.flags import (
    PROBE,
    RELOAD_WITHIN_SECONDS,
    USERS,
    Stages,
    served,
    served_once_reloaded,
    share_on,
    store,
)
from tests.helpers.local import free_port, local_environment
from tests.helpers.real_stack import QUICK_POLICY, SERVICE, start_release
from workflows.flags import FeatureRolloutWorkflow

NO_PROMETHEUS = "no `prometheus` binary on PATH: install it with scripts/system-deps.sh (apt-get install -y prometheus)"
pytestmark = [pytest.mark.integration, pytest.mark.skipif(find_prometheus() is None, reason=NO_PROMETHEUS)]

FAULTY = "bulk-download"
"""A flag whose on variant fails half of its requests (the gallery's GALLERY_FLAG_FAULTS)."""
TOLERANCE_POINTS = 2.0


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory) -> AsyncIterator[Stack]:
    local = local_environment(tmp_path_factory.mktemp("flags-stack"))
    async with local_stack(local, task_queue="releases-flags", prometheus_port=free_port()) as stack:
        yield stack


async def test_the_gallery_is_installed_with_its_flags(stack: Stack):
    handle = await start_release(stack, "1.0.0", QUICK_POLICY, env={FLAGS_VARIABLE: FAULTY, FAULTS_VARIABLE: f"{FAULTY}.on=0.5"})
    result = await asyncio.wait_for(handle.result(), 150)
    assert result.outcome is Outcome.PROMOTED, result.reason
    assert set((await served(stack, LAYOUT_FLAG, PROBE)).values()) == {"off"}  # no flags file yet: code default


async def test_each_user_keeps_the_feature_as_the_percentage_rises_within_two_points(stack: Stack):
    stages, seen = Stages(), {}
    for percentage in (25, 50):
        await stages.serve(stack, LAYOUT_FLAG, percentage)
        seen[percentage] = await served_once_reloaded(stack, LAYOUT_FLAG, percentage)
        assert set(seen[percentage].values()) == {"on", "off"}
        assert abs(share_on(seen[percentage]) - percentage) <= TOLERANCE_POINTS, share_on(seen[percentage])
    on_at = {percentage: {user for user, variant in seen[percentage].items() if variant == "on"} for percentage in seen}
    assert on_at[25] <= on_at[50]


async def test_segments_get_the_feature_and_the_page_changes_for_them(stack: Stack):
    await Stages().serve(stack, LAYOUT_FLAG, 0, ["beta-photographer"])
    assert share_on(await served_once_reloaded(stack, LAYOUT_FLAG, 0)) == 0
    async with stack_client(stack) as client:
        for user in PROBE[:20]:
            assert "class='grid'" in (await client.get("/", headers={"X-User-Id": user, "X-User-Type": "beta-photographer"})).text
            assert "<ul>" in (await client.get("/", headers={"X-User-Id": user})).text


async def test_a_hand_edited_invalid_flags_file_keeps_the_last_good_state_serving(stack: Stack):
    await Stages().serve(stack, LAYOUT_FLAG, 50)
    before = await served_once_reloaded(stack, LAYOUT_FLAG, 50)
    path = flags_file(stack.local.state_dir, "production")
    good = path.read_text()
    path.write_text(good[: len(good) // 2])  # a hand edit, saved half-way
    try:
        logs = list(stack.local.logs_dir.glob(f"*{SERVICE}.*.log"))
        deadline = time.monotonic() + RELOAD_WITHIN_SECONDS
        while not any("Could not parse JSON" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, "the services never read the broken file"
            await asyncio.sleep(0.2)
        assert await served(stack, LAYOUT_FLAG, USERS) == before
    finally:
        path.write_text(good)


def stack_client(stack: Stack):
    return http_client(base_url=stack.local.http_url, timeout=5, headers={"Host": f"{SERVICE}.localhost"})


# --- rollouts on the worker ----------------------------------------------------------------

ROLLOUT_ANALYSIS = {"interval_seconds": 3, "min_requests": 5, "thresholds": {"error_rate": {"max": 0.05}}}


async def start_rollout(stack: Stack, flag: str, steps: list[dict]) -> WorkflowHandle:
    request = {"flag": flag, "service": SERVICE, "variants": {"on": True, "off": False}, "segments": [],
               "steps": steps, "analysis": ROLLOUT_ANALYSIS, "required_approvals": []}
    return await stack.client.start_workflow(
        FeatureRolloutWorkflow.run, request, id=f"rollout-{flag}-{uuid.uuid4().hex[:6]}", task_queue=stack.task_queue
    )


async def rollout_status(handle: WorkflowHandle, condition, within: float = 60) -> FeatureRolloutStatus:
    deadline = time.monotonic() + within
    while not condition(status := await handle.query(FeatureRolloutWorkflow.status)):
        assert time.monotonic() < deadline, f"rollout condition not met within {within}s; last status: {status}"
        await asyncio.sleep(0.2)
    return status


async def test_a_faulty_variant_is_rolled_back_at_the_first_analysis_that_sees_it(stack: Stack, load: LoadGenerator):
    handle = await start_rollout(stack, FAULTY, [{"percentage": 50, "hold_seconds": 60}, {"percentage": 100, "hold_seconds": 5}])
    result = await asyncio.wait_for(handle.result(), 90)

    assert result.outcome is FlagOutcome.ROLLED_BACK, result.reason
    assert "error_rate" in result.reason and result.analyses == 1, (result.reason, result.analyses)
    analysis = (await handle.query(FeatureRolloutWorkflow.status)).last_analysis
    assert analysis.verdict == "fail" and analysis.canary_requests >= 5
    on, off = analysis.canary_values["error_rate"], analysis.stable_values["error_rate"]
    assert on > 0.2 and on > off, f"error rate with the flag on {on}, off {off}"
    assert (await read_flag(store(stack), FAULTY)).serving is Serving.OFF
    assert set((await served(stack, FAULTY, PROBE)).values()) == {"off"}


async def test_releasectl_flags_off_kills_a_rollout_while_the_worker_is_down(stack: Stack, load: LoadGenerator):
    handle = await start_rollout(stack, LAYOUT_FLAG, [{"percentage": 50, "hold_seconds": 600}, {"percentage": 100, "hold_seconds": 5}])
    await rollout_status(handle, lambda status: status.setting.percentage == 50 and status.analyses >= 1)
    await served_once_reloaded(stack, LAYOUT_FLAG, 50)
    await stack.worker.stop()
    try:
        command = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipeline.cli", "flags", "off", LAYOUT_FLAG, "--reason", "support tickets", "--actor", "alice",
            env={**os.environ, **cli_environment(stack)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await command.communicate()
        assert command.returncode == 0, err.decode()
        deadline = time.monotonic() + RELOAD_WITHIN_SECONDS
        while share_on(await served(stack, LAYOUT_FLAG, PROBE)) > 0:
            assert time.monotonic() < deadline, "the services still serve the flag after releasectl flags off"
            await asyncio.sleep(0.2)
    finally:
        await stack.worker.start()
    result = await asyncio.wait_for(handle.result(), 90)
    assert result.outcome is FlagOutcome.ROLLED_BACK, result.reason
    assert set((await served(stack, LAYOUT_FLAG, PROBE)).values()) == {"off"}
    assert (await read_flag(store(stack), LAYOUT_FLAG)).killed


def cli_environment(stack: Stack) -> dict[str, str]:
    """What the operator's shell names: the local environment and the Temporal server."""
    return {"PIPELINE_LOCAL_STATE_DIR": str(stack.local.state_dir), "PIPELINE_LOCAL_HTTP_PORT": str(stack.local.http_port),
            "PIPELINE_LOCAL_ADMIN_PORT": str(stack.local.admin_port), "TEMPORAL_ADDRESS": stack.temporal_address,
            "PIPELINE_TASK_QUEUE": stack.task_queue}
