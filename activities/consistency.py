"""The activity that runs a service's data-consistency checks on one of its databases."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.errors import permanent_errors_not_retried
from activities.heartbeat import heartbeating
from pipeline.consistency.runner import run_checks
from pipeline.logging import release_logger
from pipeline.models import ConsistencyReport, ConsistencyRequest


@activity.defn
async def check_consistency(request: ConsistencyRequest) -> ConsistencyReport:
    """Every configured check of the service, on its production or staging database.
    A violated or inconclusive check is a result for the workflow to judge, never an
    error; the activity fails (not retried) only when the service has no database."""
    with permanent_errors_not_retried():
        report = await heartbeating(
            asyncio.to_thread(run_checks, request.ref.service, request.database),
            f"checking the {request.database} database",
        )
    release_logger(request.ref).info(
        "consistency checked",
        database=request.database,
        violated=[check.name for check in report.violated],
        inconclusive=[check.name for check in report.inconclusive],
    )
    return report
