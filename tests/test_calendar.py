"""The pure deployment calendar: windows, freezes, time zones and the next opening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.decisions.calendar import evaluate
from pipeline.models import BusinessCalendar

ADR_CALENDAR = BusinessCalendar.model_validate(
    {
        "timezone": "UTC",
        "windows": [
            {"days": ["tuesday"], "start": "10:00", "duration_minutes": 120},
            {"days": ["thursday"], "start": "14:00", "duration_minutes": 120},
        ],
        "freezes": [
            {"reason": "wedding season weekend", "months": [5, 6, 7, 8, 9], "weekdays": ["saturday", "sunday"]},
            {"reason": "holidays", "from_day": "12-20", "to_day": "01-05"},
            {"reason": "payment provider migration", "start": "2025-03-04T09:00:00", "end": "2025-03-04T11:00:00"},
        ],
    }
)
ADR_OUTSIDE = "outside the deployment windows (tuesday 10:00 for 120 min; thursday 14:00 for 120 min, UTC)"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def calendar(timezone: str = "UTC", windows: list[dict] | None = None, freezes: list[dict] | None = None) -> BusinessCalendar:
    return BusinessCalendar.model_validate({"timezone": timezone, "windows": windows or [], "freezes": freezes or []})


# --- the ADR calendar -----------------------------------------------------------------------


def test_saturday_in_july_is_frozen_by_wedding_season_until_the_next_tuesday_window():
    verdict = evaluate(ADR_CALENDAR, utc(2025, 7, 12, 12))  # a Saturday
    assert verdict.open is False
    assert verdict.reason == "frozen: wedding season weekend"
    assert verdict.opens_at == utc(2025, 7, 15, 10)
    assert verdict.opens_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (utc(2025, 7, 15, 10), "inside the window tuesday 10:00 for 120 min"),
        (utc(2025, 7, 15, 11, 59), "inside the window tuesday 10:00 for 120 min"),
        (utc(2025, 7, 17, 14, 30), "inside the window thursday 14:00 for 120 min"),
    ],
)
def test_inside_a_window_is_open(at: datetime, reason: str):
    verdict = evaluate(ADR_CALENDAR, at)
    assert verdict.open is True
    assert verdict.reason == reason
    assert verdict.opens_at is None


def test_window_end_is_exclusive_and_the_next_window_is_named():
    verdict = evaluate(ADR_CALENDAR, utc(2025, 7, 15, 12))
    assert verdict.open is False
    assert verdict.reason == ADR_OUTSIDE
    assert verdict.opens_at == utc(2025, 7, 17, 14)


def test_weekend_outside_wedding_season_is_not_frozen():
    verdict = evaluate(ADR_CALENDAR, utc(2025, 3, 8, 12))  # a Saturday in March
    assert verdict.open is False
    assert verdict.reason == ADR_OUTSIDE
    assert verdict.opens_at == utc(2025, 3, 11, 10)


@pytest.mark.parametrize(
    "at",
    [utc(2024, 12, 20, 0, 0), utc(2024, 12, 31, 12), utc(2025, 1, 3, 12), utc(2025, 1, 5, 23, 59)],
)
def test_holidays_wrap_the_new_year(at: datetime):
    verdict = evaluate(ADR_CALENDAR, at)
    assert verdict.open is False
    assert verdict.reason == "frozen: holidays"
    assert verdict.opens_at == utc(2025, 1, 7, 10)


@pytest.mark.parametrize(
    ("at", "opens_at"),
    [(utc(2024, 12, 19, 13, 59), utc(2024, 12, 19, 14)), (utc(2025, 1, 6, 0, 0), utc(2025, 1, 7, 10))],
)
def test_days_either_side_of_the_holidays_are_not_frozen(at: datetime, opens_at: datetime):
    verdict = evaluate(ADR_CALENDAR, at)
    assert verdict.reason == ADR_OUTSIDE
    assert verdict.opens_at == opens_at


def test_frozen_window_opens_at_the_first_window_after_the_freeze():
    verdict = evaluate(ADR_CALENDAR, utc(2024, 12, 24, 10, 30))  # Tuesday, inside the window
    assert verdict.open is False
    assert verdict.reason == "frozen: holidays"
    assert verdict.opens_at == utc(2025, 1, 7, 10)


def test_adhoc_freeze_ending_mid_window_opens_exactly_at_its_end():
    verdict = evaluate(ADR_CALENDAR, utc(2025, 3, 4, 10, 15))
    assert verdict.open is False
    assert verdict.reason == "frozen: payment provider migration"
    assert verdict.opens_at == utc(2025, 3, 4, 11)


def test_adhoc_freeze_end_is_exclusive():
    verdict = evaluate(ADR_CALENDAR, utc(2025, 3, 4, 11))
    assert verdict.open is True
    assert verdict.reason == "inside the window tuesday 10:00 for 120 min"


def test_every_matching_freeze_is_named():
    extra = {"reason": "datacenter move", "start": "2025-07-12T00:00:00", "end": "2025-07-13T00:00:00"}
    both = BusinessCalendar.model_validate({**ADR_CALENDAR.model_dump(), "freezes": [*ADR_CALENDAR.model_dump()["freezes"], extra]})
    verdict = evaluate(both, utc(2025, 7, 12, 12))
    assert verdict.reason == "frozen: wedding season weekend; datacenter move"
    assert verdict.opens_at == utc(2025, 7, 15, 10)


def test_aware_non_utc_moment_is_accepted_and_opens_at_is_utc():
    verdict = evaluate(ADR_CALENDAR, datetime(2025, 7, 12, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert verdict.reason == "frozen: wedding season weekend"
    assert verdict.opens_at == utc(2025, 7, 15, 10)
    assert verdict.opens_at.tzinfo is UTC


# --- windows past midnight ------------------------------------------------------------------

LATE_FRIDAY = {"days": ["friday"], "start": "22:00", "duration_minutes": 240}


@pytest.mark.parametrize(
    ("at", "open_", "opens_at"),
    [
        (utc(2025, 7, 11, 21, 59), False, utc(2025, 7, 11, 22)),
        (utc(2025, 7, 11, 23, 30), True, None),
        (utc(2025, 7, 12, 1, 59), True, None),
        (utc(2025, 7, 12, 2, 0), False, utc(2025, 7, 18, 22)),
    ],
)
def test_window_running_past_midnight(at: datetime, open_: bool, opens_at: datetime | None):
    verdict = evaluate(calendar(windows=[LATE_FRIDAY]), at)
    assert verdict.open is open_
    assert verdict.opens_at == opens_at


def test_window_started_yesterday_is_named_when_open():
    verdict = evaluate(calendar(windows=[LATE_FRIDAY]), utc(2025, 7, 12, 1))
    assert verdict.reason == "inside the window friday 22:00 for 240 min"


def test_day_freeze_ending_at_midnight_inside_a_running_window_opens_at_midnight():
    frozen_fridays = calendar(windows=[LATE_FRIDAY], freezes=[{"reason": "no friday deploys", "weekdays": ["friday"]}])
    verdict = evaluate(frozen_fridays, utc(2025, 7, 11, 22, 30))
    assert verdict.reason == "frozen: no friday deploys"
    assert verdict.opens_at == utc(2025, 7, 12, 0, 0)


# --- time zones and DST ---------------------------------------------------------------------

LONDON_TUESDAY = calendar("Europe/London", windows=[{"days": ["tuesday"], "start": "10:00", "duration_minutes": 120}])


def test_london_window_in_summer_is_an_hour_earlier_in_utc():
    assert evaluate(LONDON_TUESDAY, utc(2025, 7, 15, 9)).open is True
    assert evaluate(LONDON_TUESDAY, utc(2025, 7, 15, 10, 59)).open is True
    assert evaluate(LONDON_TUESDAY, utc(2025, 7, 15, 8, 59)).opens_at == utc(2025, 7, 15, 9)


def test_london_window_closed_reason_names_the_zone():
    verdict = evaluate(LONDON_TUESDAY, utc(2025, 7, 15, 11))
    assert verdict.open is False
    assert verdict.reason == "outside the deployment windows (tuesday 10:00 for 120 min, Europe/London)"
    assert verdict.opens_at == utc(2025, 7, 22, 9)


def test_london_window_in_winter_matches_utc():
    verdict = evaluate(LONDON_TUESDAY, utc(2025, 1, 6, 12))
    assert verdict.opens_at == utc(2025, 1, 7, 10)


def test_window_across_the_spring_change_lasts_its_elapsed_minutes():
    # 2025-03-30 00:30 GMT (00:30 UTC); clocks go forward at 01:00 UTC
    night = calendar("Europe/London", windows=[{"days": ["sunday"], "start": "00:30", "duration_minutes": 180}])
    assert evaluate(night, utc(2025, 3, 29, 12)).opens_at == utc(2025, 3, 30, 0, 30)
    assert evaluate(night, utc(2025, 3, 30, 3, 29)).open is True
    assert evaluate(night, utc(2025, 3, 30, 3, 30)).open is False


def test_day_based_freeze_ends_at_local_midnight():
    weekends = calendar("Europe/London", freezes=[{"reason": "weekend", "weekdays": ["saturday", "sunday"]}])
    verdict = evaluate(weekends, utc(2025, 7, 12, 12))
    assert verdict.reason == "frozen: weekend"
    assert verdict.opens_at == utc(2025, 7, 13, 23)  # Monday 00:00 BST


def test_naive_freeze_times_are_in_the_calendar_zone():
    naive = calendar("Europe/London", freezes=[{"reason": "audit", "start": "2025-07-15T10:00:00", "end": "2025-07-15T12:00:00"}])
    assert evaluate(naive, utc(2025, 7, 15, 8, 59)).open is True
    verdict = evaluate(naive, utc(2025, 7, 15, 9, 30))
    assert verdict.reason == "frozen: audit"
    assert verdict.opens_at == utc(2025, 7, 15, 11)
    assert verdict.opens_at.tzinfo is UTC


def test_aware_freeze_times_are_taken_as_given():
    aware = calendar(
        "Europe/London", freezes=[{"reason": "audit", "start": "2025-07-15T10:00:00+00:00", "end": "2025-07-15T12:00:00+00:00"}]
    )
    assert evaluate(aware, utc(2025, 7, 15, 9, 30)).open is True
    assert evaluate(aware, utc(2025, 7, 15, 10, 30)).opens_at == utc(2025, 7, 15, 12)


# --- degenerate calendars -------------------------------------------------------------------


@pytest.mark.parametrize("at", [utc(2025, 7, 12, 3), utc(2024, 12, 25, 12), utc(2025, 3, 4, 23, 59)])
def test_no_windows_and_no_freezes_is_always_open(at: datetime):
    verdict = evaluate(BusinessCalendar(), at)
    assert verdict.open is True
    assert verdict.reason == "no deployment windows configured and no freeze applies"
    assert verdict.opens_at is None


def test_nothing_opening_within_a_year_is_closed_without_opens_at():
    forever = calendar(windows=[LATE_FRIDAY], freezes=[{"reason": "moratorium", "months": list(range(1, 13))}])
    verdict = evaluate(forever, utc(2025, 7, 12, 12))
    assert verdict.open is False
    assert verdict.reason == "frozen: moratorium; does not open within 366 days"
    assert verdict.opens_at is None


@pytest.mark.parametrize(("days", "opens"), [(300, True), (400, False)])
def test_long_adhoc_freeze_opens_only_within_the_horizon(days: int, opens: bool):
    at = utc(2025, 1, 1)
    end = at + timedelta(days=days)
    long_freeze = calendar(freezes=[{"reason": "rewrite", "start": at.isoformat(), "end": end.isoformat()}])
    assert evaluate(long_freeze, at).opens_at == (end if opens else None)


def test_naive_moment_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(ADR_CALENDAR, datetime(2025, 7, 12, 12))
