"""Schema migrations and data-consistency checks: the messages between the workflow and
the activities that migrate and check (what a release asks for is `MigrationPlan`, in
pipeline/models/request.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.models.base import Strict
from pipeline.models.messages import ServiceRef

Database = Literal["production", "staging"]


class MigrationRequest(Strict):
    ref: ServiceRef
    database: Database
    revision: str | None
    """The revision to reach; None (with `downgrade`) is the base: no schema."""
    direction: Literal["upgrade", "downgrade"] = "upgrade"
    version: str | None = None
    """The release's version: the image tag of a migration Job (kubernetes target)."""


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
