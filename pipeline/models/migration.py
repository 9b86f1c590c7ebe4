"""Schema migrations and data-consistency checks: what a release asks for, and the
messages between the workflow and the activities that migrate and check."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.models.base import Input, Strict
from pipeline.models.messages import ServiceRef

REVISION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

Database = Literal["production", "staging"]


class MigrationPlan(Input):
    """An expand/contract migration carried by a release: `expand` is applied before the
    canary (and must keep the running stable version working), `contract` only once
    nothing can roll back to the previous version any more (the point of no return)."""

    expand: str = Field(pattern=REVISION_PATTERN)
    contract: str | None = Field(None, pattern=REVISION_PATTERN)


class MigrationRequest(Strict):
    ref: ServiceRef
    database: Database
    revision: str | None
    """The revision to reach; None (with `downgrade`) is the base: no schema."""
    direction: Literal["upgrade", "downgrade"] = "upgrade"


class MigrationResult(Strict):
    database: Database
    before: str | None
    after: str | None
    changed: bool
    seconds: float


class ConsistencyRequest(Strict):
    ref: ServiceRef
    database: Database


class CheckOutcome(Strict):
    """One consistency check: how many records violate it, or None when it could not
    run (which is inconclusive, never a pass)."""

    name: str
    violations: int | None
    detail: str = ""
    seconds: float = 0.0


class ConsistencyReport(Strict):
    database: Database
    checks: list[CheckOutcome] = Field(default_factory=list)

    @property
    def violated(self) -> list[CheckOutcome]:
        return [check for check in self.checks if check.violations]

    @property
    def inconclusive(self) -> list[CheckOutcome]:
        return [check for check in self.checks if check.violations is None]
