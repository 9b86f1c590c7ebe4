"""Expand/contract schema migrations inside the rollout, and data-consistency checks.

A release with `migration` expands the staging database before its suites run (and
backfills and contracts it after, to prove them); checks that the expand keeps the
running stable version working, then expands production before the canary; checks data
consistency before the canary and at every analysis (a violation is an immediate
breach); and backfills and contracts only once the previous version is retired, so that
nothing can roll back to it any more (contract is the point of no return). A rollback
before contract reverses the expand, by policy, once traffic is back on stable, and
staging follows production. Releases without `migration` run none of this.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import check_consistency, check_expand, migrate
    from pipeline.models import (
        ConsistencyReport,
        ConsistencyRequest,
        MigrationRequest,
        MigrationResult,
        MigrationState,
        Outcome,
    )

from workflows.release.calls import ROLLBACK_RETRIES, cause
from workflows.release.stopped import ReleaseStopped
from workflows.release.waiting import only_time

MIGRATION_TIMEOUT = timedelta(minutes=30)
CONTRACT_RECHECK_SECONDS = 60
STAGING_FOLLOWS_PATCH = "staging-follows-production"
"""Since this patch, a release that does not keep its expand on production takes
staging's schema back to where it was."""
ONCE = RetryPolicy(maximum_attempts=1)
"""A contract whose precondition fails is tried again by the workflow, after a wait."""


class Migrating:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    def _migrates(self) -> bool:
        return self._request.migration is not None

    async def _migrate(self, database: str, revision: str | None, direction: str = "upgrade", **options) -> MigrationResult:
        request = MigrationRequest(
            ref=self._ref(), database=database, revision=revision, direction=direction, version=self._request.version
        )
        where = f"{direction} {database} to {revision or 'base'}"
        result = await self._change(migrate, request, where, timeout=MIGRATION_TIMEOUT, **options)
        self._note(f"schema: {where}" + ("" if result.changed else " (already there)"))
        return result

    async def _migrate_staging(self) -> None:
        """Expand staging before the new version runs there; its suites then run on it."""
        plan = self._request.migration
        if plan is None:
            return
        result = await self._migrate("staging", plan.expand)
        self._status.migration = MigrationState(
            expand=plan.expand, backfill=plan.backfill, contract=plan.contract, staging_before=result.before
        )

    async def _prove_contract_on_staging(self) -> None:
        plan = self._request.migration
        if plan is None or plan.contract is None and plan.backfill is None:
            return
        for revision in (plan.backfill, plan.contract):
            if revision is not None:
                await self._migrate("staging", revision)
        await self._require_consistency("staging", f"after {'contract' if plan.contract else 'backfill'} on staging")

    async def _expand_production(self) -> None:
        """Before the canary: the expand must keep stable working, then it is applied."""
        plan = self._request.migration
        if plan is None or (self._status.migration is not None and self._status.migration.expanded):
            return
        problems = await self._read(
            check_expand,
            MigrationRequest(ref=self._ref(), database="production", revision=plan.expand),
            f"check that {plan.expand} keeps {self._status.stable_version or 'stable'} working",
        )
        if problems:
            raise ReleaseStopped(Outcome.FAILED, f"expand {plan.expand} is not backward-compatible: " + "; ".join(problems))
        await self._require_consistency("production", "before the expand")
        result = await self._migrate("production", plan.expand)
        state = self._status.migration or MigrationState(expand=plan.expand, backfill=plan.backfill, contract=plan.contract)
        state.before, state.expanded = result.before, True
        self._status.migration = state

    async def _require_consistency(self, database: str, when: str) -> None:
        report = await self._consistency(database)
        if report is not None and report.violated:
            raise ReleaseStopped(Outcome.FAILED, f"data consistency {when}: {describe_violations(report)}")

    async def _consistency(self, database: str) -> ConsistencyReport | None:
        """The service's consistency checks; None when they could not be read at all."""
        try:
            report = await self._interruptible(
                check_consistency,
                ConsistencyRequest(ref=self._ref(), database=database),
                f"check data consistency on {database}",
                timedelta(minutes=2),
            )
        except ActivityError as error:
            self._note(f"consistency checks unavailable: {cause(error)}")
            return None
        self._status.consistency = report
        return report

    async def _analyse_consistency(self) -> None:
        """At each analysis of a migrating release: a violation is an immediate breach;
        a check that cannot run is noted, never taken as a pass."""
        if not self._migrates():
            return
        report = await self._consistency("production")
        if report is None:
            return
        if report.inconclusive:
            self._note("consistency inconclusive: " + "; ".join(f"{c.name} ({c.detail})" for c in report.inconclusive))
        if report.violated:
            raise ReleaseStopped(Outcome.ROLLED_BACK, f"data consistency: {describe_violations(report)}")

    async def _reverse_expand(self) -> None:
        """After a rollback's traffic is on stable: the expand reversed, or kept by policy
        (an expand is safe for the old version by design). After contract, nothing.
        Staging then follows production."""
        state = self._status.migration
        if state is None:
            return
        if state.expanded and not state.reversed:
            if state.contracted:
                self._note(f"schema contracted to {state.contract}: no automatic schema rollback after the point of no return")
                return
            if self._request.policy.migration_rollback == "keep":
                self._note(f"schema kept at {state.expand}: safe for the previous version by design")
                return
            await self._migrate("production", state.before, "downgrade", retry=ROLLBACK_RETRIES)
            state.reversed = True
        await self._restore_staging(state)

    async def _restore_staging(self, state: MigrationState) -> None:
        """Staging's schema back to where it was before this release. Staging carries no
        traffic: a failure is noted, and does not hold up the rollback's outcome."""
        if state.staging_restored or not self._patched(STAGING_FOLLOWS_PATCH):
            return
        try:
            await self._migrate("staging", state.staging_before, "downgrade")
            state.staging_restored = True
        except ReleaseStopped as failure:
            self._note(f"staging schema not restored to {state.staging_before or 'base'}: {failure.reason}")

    async def _contract_production(self) -> None:
        """Contract once the previous version is retired: the point of no return. A
        precondition that does not hold yet (rows still NULL) is retried until the
        policy's bound; then the release fails with the schema still expanded (safe)."""
        state = self._status.migration
        if state is None:
            return
        if state.backfill is not None and not state.backfilled:
            await self._migrate("production", state.backfill)
            state.backfilled = True
        if state.contract is None or state.contracted:
            return
        waited, bound = 0, self._request.policy.contract_wait_seconds
        while True:
            try:
                await self._migrate("production", state.contract, retry=ONCE)
                state.contracted = True
                self._note(f"contracted to {state.contract}: the point of no return, no automatic schema rollback")
                return
            except ReleaseStopped as failure:
                if waited >= bound:
                    raise ReleaseStopped(
                        Outcome.FAILED, f"promoted, but contract {state.contract} did not apply within {bound}s: "
                        f"{failure.reason}; the schema stays expanded, which the new version serves"
                    ) from None
                self._note(f"contract {state.contract} waits for its precondition: {failure.reason}")
                await self._wait_until(only_time, CONTRACT_RECHECK_SECONDS)
                waited += CONTRACT_RECHECK_SECONDS


def describe_violations(report: ConsistencyReport) -> str:
    return "; ".join(f"{check.name}: {check.violations} violations ({check.detail})" for check in report.violated)
