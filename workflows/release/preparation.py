"""Before anything changes: the request validated (or resumed from a continued run),
the release gates read into history, and the target pre-flighted."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import load_gates, preflight
    from pipeline import search_attributes
    from pipeline.decisions.validation import InvalidRequest, parse_request
    from pipeline.models import Outcome, Phase, PreflightRequest, ReleaseRequest

from workflows.release.stopped import ReleaseStopped

GATES_PATCH = "release-gates"
"""Releases started before gates existed replay without them (see `_load_gates`)."""


class Preparation:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    def _validate(self, inputs: tuple[Any, ...]) -> ReleaseRequest:
        """A bad request fails the workflow at once, naming each bad field, before
        anything is touched; it never leaves a workflow task retrying. A continued run
        has already resumed (see `_resume_if_continued`)."""
        if self._resumed is not None:
            return self._resumed
        try:
            if len(inputs) != 1:
                raise InvalidRequest([f"input: expected one release request, got {len(inputs)} inputs"])
            request = parse_request(inputs[0])
        except InvalidRequest as invalid:
            self._status.outcome, self._status.reason = Outcome.FAILED, str(invalid)
            self._status.phase = Phase.DONE
            workflow.upsert_search_attributes(
                [
                    search_attributes.PHASE.value_set(Phase.DONE.value),
                    search_attributes.OUTCOME.value_set(Outcome.FAILED.value),
                ]
            )
            raise ApplicationError(
                str(invalid), {"problems": invalid.problems}, type="InvalidReleaseRequest", non_retryable=True
            ) from None
        self._status.service, self._status.version, self._status.target = (
            request.service,
            request.version,
            request.target,
        )
        workflow.upsert_search_attributes(
            [search_attributes.SERVICE.value_set(request.service)]
            + ([search_attributes.VERSION.value_set(request.version)] if request.version else [])
        )
        return request

    async def _load_gates(self) -> None:
        """Read who may approve and which webhooks to tell, once, into history.
        A release whose history predates gates replays without them."""
        if self._continued or not self._patched(GATES_PATCH):
            return
        self._status.gates = await self._read(load_gates, self._ref(), "read the release gates", quick=True)
        self._note(f"gates from {self._status.gates.source}")

    async def _preflight(self) -> str | None:
        if self._progress.preflight:
            return self._status.stable_version
        report = await self._change(
            preflight,
            PreflightRequest(ref=self._ref(), suites=self._request.policy.test_suites),
            "check the target can run this release",
        )
        if report.missing_suites:
            raise ReleaseStopped(
                Outcome.FAILED,
                f"test suites not in the worker's catalog for {self._request.service}: {', '.join(report.missing_suites)}",
            )
        self._status.stable_version = report.stable_version
        await self._open_before_window()
        self._progress.preflight = True
        return report.stable_version
