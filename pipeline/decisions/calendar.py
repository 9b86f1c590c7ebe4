"""The deployment calendar: may production change at a given moment, and if not, when next?

A moment is open when it lies inside a deployment window (or the calendar has no
windows) and no freeze matches it. Windows and day-based freezes (months, weekdays,
a yearly `from_day`..`to_day` range) are read in the calendar's time zone, so a
window at 10:00 Europe/London is 09:00 UTC in July and 10:00 UTC in January. A
window lasts `duration_minutes` of elapsed time from its local start, even across
a DST change; naive absolute freeze times are in the calendar's time zone.

Why the next opening is searched among candidates: the open/closed state is
piecewise constant. Every window and freeze is a union of intervals that include
their start and exclude their end, so the state can only turn from closed to open
at a window start, at a local midnight (where a day-based freeze stops matching)
or at the end of an absolute freeze. Evaluating just those instants, in time order,
finds the exact opening moment with a few hundred checks for a year, where scanning
minute by minute would take half a million. Window ends and freeze starts only ever
close the calendar, so they are never candidates.

Pure: no clock reads and no I/O besides time zone lookups.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pipeline.models import BusinessCalendar, CalendarVerdict, Freeze, Weekday, Window

HORIZON = timedelta(days=366)
"""How far ahead the next opening is searched."""

_WEEKDAYS = list(Weekday)
"""In `date.weekday()` order: monday first."""


def evaluate(calendar: BusinessCalendar, at: datetime) -> CalendarVerdict:
    """Whether production may change at `at` (timezone-aware), why, and when closed
    the next moment it may (an aware UTC datetime, None beyond `HORIZON`)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"'at' must be timezone-aware, got naive {at.isoformat()}")
    zone = ZoneInfo(calendar.timezone)
    at = at.astimezone(UTC)
    if _is_open(calendar, zone, at):
        return CalendarVerdict(open=True, reason=_why_open(calendar, zone, at))
    reason = _why_closed(calendar, zone, at)
    opens_at = _next_opening(calendar, zone, at)
    if opens_at is None:
        reason = f"{reason}; does not open within {HORIZON.days} days"
    return CalendarVerdict(open=False, reason=reason, opens_at=opens_at)


# --- the state at one moment ----------------------------------------------------------------


def _is_open(calendar: BusinessCalendar, zone: ZoneInfo, moment: datetime) -> bool:
    in_window = not calendar.windows or _covering_window(calendar.windows, zone, moment) is not None
    return in_window and not _matching_freezes(calendar.freezes, zone, moment)


def _why_open(calendar: BusinessCalendar, zone: ZoneInfo, moment: datetime) -> str:
    window = _covering_window(calendar.windows, zone, moment)
    if window is None:
        return "no deployment windows configured and no freeze applies"
    return f"inside the window {_describe(window)}"


def _why_closed(calendar: BusinessCalendar, zone: ZoneInfo, moment: datetime) -> str:
    freezes = _matching_freezes(calendar.freezes, zone, moment)
    if freezes:
        return "frozen: " + "; ".join(freeze.reason for freeze in freezes)
    windows = "; ".join(_describe(window) for window in calendar.windows)
    return f"outside the deployment windows ({windows}, {calendar.timezone})"


def _describe(window: Window) -> str:
    return f"{'/'.join(window.days)} {window.start} for {window.duration_minutes} min"


def _covering_window(windows: list[Window], zone: ZoneInfo, moment: datetime) -> Window | None:
    return next((window for window in windows if _covers(window, zone, moment)), None)


def _covers(window: Window, zone: ZoneInfo, moment: datetime) -> bool:
    """Whether a run of `window` that started today or on an earlier local day (it may
    last past midnight) is still running at `moment`."""
    today = moment.astimezone(zone).date()
    length = timedelta(minutes=window.duration_minutes)
    days_back = window.duration_minutes // 1440 + 1
    for day in (today - timedelta(days=back) for back in range(days_back + 1)):
        if _weekday(day) in window.days:
            start = _instant(day, window.start, zone)
            if start <= moment < start + length:
                return True
    return False


def _matching_freezes(freezes: list[Freeze], zone: ZoneInfo, moment: datetime) -> list[Freeze]:
    local_day = moment.astimezone(zone).date()
    return [freeze for freeze in freezes if _freeze_matches(freeze, zone, moment, local_day)]


def _freeze_matches(freeze: Freeze, zone: ZoneInfo, moment: datetime, local_day: date) -> bool:
    """Every constraint the freeze gives holds."""
    return (
        (not freeze.months or local_day.month in freeze.months)
        and (not freeze.weekdays or _weekday(local_day) in freeze.weekdays)
        and (freeze.from_day is None or _in_yearly_range(local_day, freeze.from_day, freeze.to_day))
        and (freeze.start is None or _aware(freeze.start, zone) <= moment < _aware(freeze.end, zone))
    )


def _in_yearly_range(day: date, from_day: str, to_day: str) -> bool:
    """`from_day`..`to_day` ("MM-DD"), both included; wraps the new year when from > to."""
    first, last, current = _month_day(from_day), _month_day(to_day), (day.month, day.day)
    if first <= last:
        return first <= current <= last
    return current >= first or current <= last


# --- the next opening -----------------------------------------------------------------------


def _next_opening(calendar: BusinessCalendar, zone: ZoneInfo, at: datetime) -> datetime | None:
    horizon = at + HORIZON
    candidates = sorted({moment for moment in _opening_candidates(calendar, zone, at, horizon) if at < moment <= horizon})
    return next((moment for moment in candidates if _is_open(calendar, zone, moment)), None)


def _opening_candidates(calendar: BusinessCalendar, zone: ZoneInfo, at: datetime, horizon: datetime) -> Iterator[datetime]:
    """Every instant in [at's local day, horizon's local day] at which the calendar
    could turn open: window starts, local midnights if a freeze is day-based, and
    absolute freeze ends."""
    days = _local_days(zone, at, horizon)
    for window in calendar.windows:
        yield from (_instant(day, window.start, zone) for day in days if _weekday(day) in window.days)
    if any(freeze.months or freeze.weekdays or freeze.from_day for freeze in calendar.freezes):
        yield from (_instant(day, "00:00", zone) for day in days)
    yield from (_aware(freeze.end, zone).astimezone(UTC) for freeze in calendar.freezes if freeze.end is not None)


def _local_days(zone: ZoneInfo, at: datetime, horizon: datetime) -> list[date]:
    first, last = at.astimezone(zone).date(), horizon.astimezone(zone).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


# --- conversions ----------------------------------------------------------------------------


def _instant(day: date, clock: str, zone: ZoneInfo) -> datetime:
    """The UTC instant of local `clock` ("HH:MM") on `day`. A clock time skipped by a
    DST change falls on the equivalent instant after the change; a repeated one on its
    first occurrence."""
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=zone).astimezone(UTC)


def _aware(moment: datetime, zone: ZoneInfo) -> datetime:
    """A freeze's absolute time: naive ones are in the calendar's time zone."""
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def _weekday(day: date) -> Weekday:
    return _WEEKDAYS[day.weekday()]


def _month_day(text: str) -> tuple[int, int]:
    month, day = text.split("-")
    return int(month), int(day)
