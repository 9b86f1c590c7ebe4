"""After promotion: the new version bakes with all traffic while the previous one
stays warm, and only a bake that passes retires the previous version.

Bake is analysed like a canary step, against the thresholds and against the previous
version's own metrics from before the canary started ("no worse than before the
release": `pipeline.decisions.analysis.judge_bake`). A breach, a kill switch or a
rejection during bake sends all traffic back to the warm previous version
(workflows/release/revert.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import promote_canary, promote_version, retire_version
    from pipeline.models import Phase, PromoteRequest, VersionRequest

from workflows.release.timeline import iso

BAKE_PATCH = "bake"
"""Releases started before bake existed replay as they ran: no pre-release baseline,
promote_canary, and the previous version retired after `retire_delay_seconds`."""

BEFORE_SAMPLES_LIMIT = 1_000
"""Raw samples kept per metric of the pre-release baseline: enough for a rank test,
bounded so that status and continue-as-new stay small after a long approval wait."""


class Baking:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    def _bakes(self) -> bool:
        """Whether this release runs the bake-era path. Decided once per run, at its
        start (see `run`), so that signal handlers and validators can ask too."""
        return self._bake_era

    async def _open_before_window(self) -> None:
        """Start measuring the stable version, before anything of the release runs in
        production; `_close_before_window` ends the window just before the canary."""
        if self._bakes() and self._status.stable_version is not None:
            self._before_cursor = (await self._observe(cursor={})).cursor

    async def _close_before_window(self) -> None:
        if not self._bakes() or self._status.before_release is not None or not self._before_cursor:
            return
        before = (await self._observe(cursor=self._before_cursor)).stable
        if before.requests:
            samples = {metric: series[-BEFORE_SAMPLES_LIMIT:] for metric, series in before.samples.items()}
            self._status.before_release = before.model_copy(update={"samples": samples})
            self._note(f"before the release, {self._status.stable_version} served {before.requests} requests")
        else:
            self._note("no traffic on stable before the canary: bake will check the thresholds only")

    async def _promote(self) -> str | None:
        """Make the new version stable with all traffic. Returns the version it replaced,
        which stays warm for the bake."""
        version = self._request.version
        if not self._bakes():
            return await self._change(
                promote_canary, self._ref(), f"promote {version} to stable", timeout=timedelta(minutes=15)
            )
        self._canary_may_get_traffic = True
        return await self._change(
            promote_version,
            PromoteRequest(ref=self._ref(), keep=self._request.policy.rollback_window),
            f"promote {version} to stable",
            timeout=timedelta(minutes=15),
        )

    async def _bake_then_retire(self, previous: str) -> None:
        """Watch the new version for `bake_seconds` with `previous` warm, then retire
        `previous`. Without bake (or for a release that predates it) `previous` is
        retired after `retire_delay_seconds`, unwatched."""
        policy = self._request.policy
        if self._bakes() and policy.bake_seconds > 0:
            if not self._progress.baked:
                await self._bake(previous)
        elif not self._request.keep_previous:
            self._note(f"retiring {previous} in {policy.retire_delay_seconds}s")
            if policy.retire_delay_seconds > 0 or not self._is_light():
                await workflow.sleep(policy.retire_delay_seconds)
        if self._request.keep_previous:
            self._note(f"{previous} stays warm: its train retires it, or goes back to it, when the train ends")
            return
        await self._change(retire_version, VersionRequest(ref=self._ref(), version=previous), f"retire {previous}")
        self._status.warm_version = None

    async def _bake(self, previous: str) -> None:
        policy = self._request.policy
        self._status.warm_version = previous
        if self._status.phase is not Phase.BAKE:
            self._status.bake_until = iso(workflow.now() + timedelta(seconds=policy.bake_seconds))
            self._enter(
                Phase.BAKE,
                f"baking {self._request.version} with all traffic for {policy.bake_seconds}s; {previous} stays warm",
            )
        await self._watch(policy.bake_seconds)
        self._progress.baked = True
        self._canary_may_get_traffic = False
        self._note(f"bake passed: {'keeping' if self._request.keep_previous else 'retiring'} {previous}")

    def _baking(self) -> bool:
        """The new version has all traffic and the previous one is still warm to go back to."""
        return (
            self._bakes()
            and self._progress.promoted
            and self._status.warm_version is not None
            and not self._progress.baked
        )
