"""How a release waits: until a condition holds or time runs out, always ending at once
when a kill switch or rejection stops it. `_wait_until` is the primitive;
`_wait_watching_canary` is the same wait with a live canary analysed every interval
meanwhile (approvals and gate holds use it: nothing waits blind while users are on
the new version)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from temporalio import workflow


def only_time() -> bool:
    """A condition that never holds: a wait on it ends when its time is up (or the release stops)."""
    return False


class Waiting:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    async def _wait_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Wait until `condition` holds (True) or `timeout` seconds pass (False).
        A kill switch or rejection ends the wait by stopping the release. A light
        release makes no timer for a wait that is already over."""
        if timeout is not None and timeout <= 0 and self._is_light():
            if self._stop is not None:
                raise self._stop
            return condition()
        try:
            await workflow.wait_condition(lambda: self._stop is not None or condition(), timeout=timeout)
            met = True
        except asyncio.TimeoutError:
            met = False
        if self._stop is not None:
            raise self._stop
        return met

    async def _wait_watching_canary(self, condition: Callable[[], bool], deadline: datetime | None = None) -> bool:
        """Wait until `condition` holds (True) or `deadline` passes (False). A live
        canary keeps being analysed every analysis interval meanwhile."""
        interval = self._request.policy.analysis_interval_seconds
        while not condition():
            await self._continue_if_history_long()
            remaining = None if deadline is None else (deadline - workflow.now()).total_seconds()
            if remaining is not None and remaining <= 0:
                return False
            if self._analysed_at is None:  # no canary has been analysed: none is live
                await self._wait_until(condition, remaining)
                continue
            until_analysis = interval - (workflow.now() - self._analysed_at).total_seconds()
            if until_analysis <= 0:
                await self._analyse()
            elif remaining is not None and remaining < until_analysis:
                await self._wait_until(condition, remaining)
            elif not await self._wait_until(condition, until_analysis):
                await self._analyse()
        return True
