"""Activities that run the staging test suites."""

from __future__ import annotations

from temporalio import activity

from activities.heartbeat import heartbeating
from pipeline import suites
from pipeline.logging import release_logger
from pipeline.models import Slot, SuiteRequest, SuiteResult
from pipeline.targets import target_for

SUITE_TIMEOUT_SECONDS = 600


@activity.defn
async def run_test_suite(request: SuiteRequest) -> SuiteResult:
    """Run one suite from the worker's catalog against the staging instance.
    A failing suite is a result, not an error: the workflow decides what it means."""
    staging_url = target_for(request.ref.target).endpoint(request.ref.service, Slot.STAGING)
    result = await heartbeating(
        suites.run_suite(request.ref.service, request.suite, staging_url, SUITE_TIMEOUT_SECONDS), f"running {request.suite}"
    )
    release_logger(request.ref).info(
        "suite finished", suite=request.suite, passed=result.passed, seconds=round(result.duration_seconds, 2)
    )
    return result
