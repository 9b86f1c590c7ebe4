"""The worker's release governance (the gates file) and what a release keeps of it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.decisions.service_env import ENV_NAME_PATTERN
from pipeline.models.base import Stage, Strict
from pipeline.models.adapters import TargetName


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
MONTH_DAY_PATTERN = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


class Window(Strict):
    """A weekly deployment window, in the calendar's time zone: `start` on each of
    `days`, open for `duration_minutes` (which may run past midnight)."""

    days: list[Weekday] = Field(min_length=1)
    start: str = Field(pattern=CLOCK_PATTERN)
    duration_minutes: int = Field(ge=1, le=7 * 1440)


class Freeze(Strict):
    """A blocked period. Every constraint given must hold for a moment to be frozen:
    `months` and `weekdays` (wedding-season weekends), a yearly `from_day`..`to_day`
    range such as 12-20..01-05 (holidays; it may wrap the new year, both days
    included), or an absolute `start`..`end` (an ad-hoc freeze; naive times are in
    the calendar's time zone)."""

    reason: str = Field(min_length=1, max_length=500)
    months: list[Annotated[int, Field(ge=1, le=12)]] = Field(default_factory=list)
    weekdays: list[Weekday] = Field(default_factory=list)
    from_day: str | None = Field(None, pattern=MONTH_DAY_PATTERN)
    to_day: str | None = Field(None, pattern=MONTH_DAY_PATTERN)
    start: datetime | None = None
    end: datetime | None = None

    @model_validator(mode="after")
    def _well_formed(self) -> Freeze:
        if (self.from_day is None) != (self.to_day is None):
            raise ValueError("give both 'from_day' and 'to_day', or neither")
        if (self.start is None) != (self.end is None):
            raise ValueError("give both 'start' and 'end', or neither")
        if self.start is not None and self.end is not None and (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("'start' and 'end' must both have a time zone offset, or neither")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("'end' must be after 'start'")
        if not (self.months or self.weekdays or self.from_day or self.start):
            raise ValueError("give at least one of 'months', 'weekdays', 'from_day'/'to_day' or 'start'/'end'")
        return self


class BusinessCalendar(Strict):
    """When production may change. No windows: any time that is not frozen."""

    timezone: str = "UTC"
    windows: list[Window] = Field(default_factory=list)
    freezes: list[Freeze] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name


class CalendarVerdict(Strict):
    open: bool
    reason: str
    opens_at: datetime | None = None
    """When closed: the next moment production may change; None if none within a year."""


class Approvers(Strict):
    """People allowed to do something: named users, and members of named groups."""

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class ApprovalRule(Approvers):
    """Who may approve a stage, and how many distinct people must. A stage with a
    rule always needs approval, whatever the release request says."""

    min_approvals: int = Field(1, ge=1, le=10)
    forbid_author: bool = Field(False, description="the release's author may not approve it")


class LiveActivityCheck(Strict):
    """The platform endpoint that reports live activity (GET, JSON object of counts).
    `{stable}` in the URL is the stable version's base URL on the release's target."""

    url: str = Field(min_length=1)
    targets: list[TargetName] = Field(default_factory=list, description="the targets it applies to; empty: all")
    counters: list[str] = Field(default_factory=lambda: ["active_uploads", "processing_jobs", "client_sessions"], min_length=1)
    timeout_seconds: float = Field(5.0, gt=0, le=60)


class NotificationEvent(StrEnum):
    APPROVAL_NEEDED = "approval_needed"
    PHASE = "phase"
    HELD = "held"
    ROLLBACK = "rollback"
    FINISHED = "finished"


class Webhook(Strict):
    """A notification receiver. Its URL (Slack's carries a token) is read from the
    worker's environment variable `url_env`, so it never enters history or logs."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    format: Literal["slack", "json"] = "json"
    url_env: str = Field(pattern=ENV_NAME_PATTERN)
    events: list[NotificationEvent] = Field(default_factory=lambda: list(NotificationEvent))
    timeout_seconds: float = Field(5.0, gt=0, le=60)


class ServiceGates(Strict):
    """One service's gates. In the gates file, `defaults` holds them for every
    service and `services.<name>` overrides them field by field."""

    approvals: dict[Stage, ApprovalRule] = Field(default_factory=dict)
    break_glass: Approvers = Field(default_factory=Approvers)
    calendar: BusinessCalendar = Field(default_factory=BusinessCalendar)
    live_activity: LiveActivityCheck | None = None
    webhooks: list[Webhook] = Field(default_factory=list)


class GatesConfig(Strict):
    """The worker's release governance (PIPELINE_GATES_FILE): it belongs to whoever
    runs the worker, so a release request can add approvals but never remove them."""

    groups: dict[str, list[str]] = Field(default_factory=dict)
    defaults: ServiceGates = Field(default_factory=ServiceGates)
    services: dict[str, ServiceGates] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _groups_exist(self) -> GatesConfig:
        for where, gates in [("defaults", self.defaults), *((f"services.{name}", g) for name, g in self.services.items())]:
            named = [*gates.break_glass.groups, *(group for rule in gates.approvals.values() for group in rule.groups)]
            unknown = sorted(set(named) - set(self.groups))
            if unknown:
                raise ValueError(f"{where} names unknown groups: {', '.join(unknown)}")
        return self

    def for_service(self, service: str) -> ServiceGates:
        """The defaults, with the fields the service's entry sets replaced."""
        override = self.services.get(service)
        if override is None:
            return self.defaults
        return self.defaults.model_copy(update={name: getattr(override, name) for name in override.model_fields_set})


class StageGate(Strict):
    """A stage's approval rule as a release sees it, groups expanded to people."""

    anyone: bool
    """No rule configured: anyone may approve."""
    approvers: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    min_approvals: int = 1
    forbid_author: bool = False


class ReleaseGates(Strict):
    """What the workflow keeps of the gates, read once when a release starts: who may
    approve and break glass, and the webhooks' names. Recorded in history, so the
    approvers a release was held to are part of its audit trail; never a URL."""

    approvals: dict[Stage, StageGate] = Field(default_factory=dict)
    break_glass: list[str] = Field(default_factory=list)
    webhooks: dict[str, list[NotificationEvent]] = Field(default_factory=dict)
    """Webhook name -> the events it wants."""
    source: str
