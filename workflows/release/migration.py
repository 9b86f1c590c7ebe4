"""Expand/contract schema migrations inside the rollout, and data-consistency checks.

A release with `migration` expands (and contracts, to prove it) on the staging database
before its suites run; checks that the expand keeps the running stable version working,
then expands production before the canary; checks data consistency before the canary and
at every analysis (a violation is an immediate breach); and contracts only once the
previous version is retired, so that nothing can roll back to it any more (the point of
no return). A rollback before contract reverses the expand, by policy, once traffic is
back on stable. Releases without `migration` run none of this, so no patch is needed.
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
        MetricCheck,
        Metric,
        MigrationRequest,
        MigrationResult,
        MigrationState,
        Outcome,
        Severity,
    )

from workflows.release.calls import ROLLBACK_RETRIES, cause
from workflows.release.stopped import ReleaseStopped
from workflows.release.waiting import only_time

MIGRATION_TIMEOUT = timedelta(minutes=30)
CONTRACT_RECHECK_SECONDS = 60
ONCE = RetryPolicy(maximum_attempts=1)
"""A contract whose precondition fails is tried again by the workflow, after a wait."""


class Migrating:
    """Part of ReleaseWorkflow (see workflows/release/workflow.py), kept apart by concern."""

    def _migrates(self) -> bool:
        return self._request.migration is not None

    async def _migrate(self, database: str, revision: str | None, direction: str = "upgrade", **options) -> MigrationResult:
        request = MigrationRequest(ref=self._ref(), database=database, revision=revision, direction=direction)
        where = f"{direction} {database} to {revision or 'base'}"
        result = await self._change(migrate, request, where, timeout=MIGRATION_TIMEOUT, **options)
        self._note(f"schema: {where}" + ("" if result.changed else " (already there)"))
        return result

    async def _migrate_staging(self) -> None:
        """Expand staging before the new version runs there; its suites then run on it."""
        if self._migrates():
            await self._migrate("staging", self._request.migration.expand)

    async def _prove_contract_on_staging(self) -> None:
        plan = self._request.migration
        if plan is not None and plan.contract is not None:
            await self._migrate("staging", plan.contract)
            await self._require_consistency("staging", "after contract on staging")

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
        self._status.migration = MigrationState(
            expand=plan.expand, contract=plan.contract, before=result.before, expanded=True
        )

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
            first = report.violated[0]
            breach = MetricCheck(
                metric=Metric.FILE_CORRUPTION_RATE if "file" in first.name else Metric.ERROR_RATE,
                value=float(first.violations),
                threshold="0 consistency violations",
                passed=False,
                severity=Severity.IMMEDIATE,
                reason=describe_violations(report),
            )
            raise ReleaseStopped(Outcome.ROLLED_BACK, f"data consistency: {describe_violations(report)}", breach)

    async def _reverse_expand(self) -> None:
        """After a rollback's traffic is on stable: the expand reversed, or kept by policy
        (an expand is safe for the old version by design). After contract, nothing."""
        state = self._status.migration
        if state is None or not state.expanded or state.reversed:
            return
        if state.contracted:
            self._note(f"schema contracted to {state.contract}: no automatic schema rollback after the point of no return")
            return
        if self._request.policy.migration_rollback == "keep":
            self._note(f"schema kept at {state.expand}: safe for the previous version by design")
            return
        await self._migrate("production", state.before, "downgrade", retry=ROLLBACK_RETRIES)
        state.reversed = True

    async def _contract_production(self) -> None:
        """Contract once the previous version is retired: the point of no return. A
        precondition that does not hold yet (rows still NULL) is retried until the
        policy's bound; then the release fails with the schema still expanded (safe)."""
        state = self._status.migration
        if state is None or state.contract is None or state.contracted:
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
