"""DORA and safety figures (pipeline/decisions/dora.py) over the recorded histories
of tests/histories/ (each read as `releasectl dora` reads one from Temporal) and over
a month of releases built by hand; `releasectl dora`'s input and output. The command
against Temporal itself runs in tests/test_worker_metrics.py, on that module's releases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from pipeline.cli_input import CliError
from pipeline.decisions.dora import ReleaseRecord, dora_figures
from pipeline.dora import duration, parse_since, record_from_history, render_prometheus, render_text
from pipeline.models import Outcome

HISTORIES = Path(__file__).parent / "histories"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def recorded() -> dict[str, ReleaseRecord | None]:
    return {
        path.stem: await record_from_history(
            WorkflowHistory.from_json(path.stem, path.read_text()).events, pydantic_data_converter
        )
        for path in sorted(HISTORIES.glob("*.json"))
    }


async def test_recorded_histories_give_their_outcome_breach_and_promotion():
    records = await recorded()

    assert records["invalid_request"] is None  # failed on its input: no result, not a release
    assert records["promoted"].outcome is Outcome.PROMOTED and records["promoted"].breach_at is None
    # promotion is when the promote activity completed, the bake's 10 minutes before the close
    assert timedelta(minutes=9) < records["promoted"].closed_at - records["promoted"].promoted_at < timedelta(minutes=11)
    assert records["rolled_back"].breach_at is not None and records["rolled_back"].promoted_at is None
    # a consistency violation found at an analysis is a breach too, though no metric's
    assert records["migration_rolled_back"].breach_at is not None
    assert records["rolled_back_in_bake"].after_promotion and records["rolled_back_in_bake"].promoted_at is not None
    assert records["reverted"].outcome is Outcome.REVERTED and records["reverted"].reverted_from == "1.0.0"


async def test_figures_over_the_recorded_histories():
    records = [record for record in (await recorded()).values() if record is not None]
    since = min(record.closed_at for record in records) - timedelta(hours=1)
    until = max(record.closed_at for record in records) + timedelta(hours=1)

    figures = dora_figures(records, since, until)

    assert figures.releases == 9
    assert figures.deployments == 4  # promoted, held_then_promoted, migrated, and rolled_back_in_bake
    assert (figures.change_failures, figures.rolled_back_after_promotion, figures.reverted) == (1, 1, 0)
    assert figures.change_failure_rate == 0.25
    assert (figures.rollbacks_before_promotion, figures.incidents_prevented) == (2, 2)
    assert figures.time_to_restore.count == 3 and figures.time_to_restore.max_seconds < 5
    assert figures.lead_time.count == 0  # none of them was started with a commit_time


def release(days_ago: float, outcome: Outcome = Outcome.PROMOTED, version: str = "1.0.0", **fields) -> ReleaseRecord:
    closed = NOW - timedelta(days=days_ago)
    promoted = closed - timedelta(minutes=10) if outcome is Outcome.PROMOTED or fields.get("after_promotion") else None
    return ReleaseRecord(
        service=fields.pop("service", "gallery"), version=version, outcome=outcome, closed_at=closed,
        promoted_at=promoted, **fields,
    )


MONTH = [
    release(29, version="1.0.0", commit_time=NOW - timedelta(days=29, hours=2, minutes=10)),
    release(20, version="1.1.0", commit_time=NOW - timedelta(days=20, hours=6, minutes=10)),
    release(15, Outcome.ROLLED_BACK, "1.2.0", breach_at=NOW - timedelta(days=15, seconds=40)),
    release(14, Outcome.ROLLED_BACK, "1.2.1"),  # a kill switch: no breach, not an incident analysis prevented
    release(10, Outcome.ROLLED_BACK, "1.3.0", after_promotion=True, breach_at=NOW - timedelta(days=10, seconds=100)),
    release(5, version="1.4.0"),
    release(4, Outcome.REVERTED, "1.1.0", reverted_from="1.4.0"),
    release(2, Outcome.REJECTED, "1.5.0"),
    release(1, version="2.0.0", service="billing"),
    release(45, version="0.9.0"),  # before the range
]


def test_a_month_of_releases():
    figures = dora_figures(MONTH, NOW - timedelta(days=30), NOW)

    assert figures.releases == 9 and figures.days == 30
    assert figures.deployments == 5  # 1.0.0, 1.1.0, 1.3.0 (until its bake failed), 1.4.0, billing 2.0.0
    assert figures.deployments_per_day == pytest.approx(5 / 30)
    assert (figures.rolled_back_after_promotion, figures.reverted, figures.change_failures) == (1, 1, 2)
    assert figures.change_failure_rate == pytest.approx(2 / 5)
    assert figures.time_to_restore.count == 2 and figures.time_to_restore.max_seconds == 100
    assert figures.time_to_restore.median_seconds == 70
    assert figures.lead_time.count == 2
    assert sorted([figures.lead_time.median_seconds, figures.lead_time.max_seconds]) == [4 * 3600, 6 * 3600]
    assert (figures.rollbacks_before_promotion, figures.incidents_prevented) == (2, 1)


def test_a_revert_counts_against_the_newest_promotion_of_the_version_it_left():
    records = [release(9, version="1.4.0"), release(6, version="1.4.0"), release(4, Outcome.REVERTED, "1.1.0", reverted_from="1.4.0")]
    figures = dora_figures(records, NOW - timedelta(days=30), NOW)
    assert (figures.deployments, figures.reverted, figures.change_failures) == (2, 1, 1)


def test_nothing_in_production_has_no_failure_rate():
    figures = dora_figures([release(3, Outcome.REJECTED)], NOW - timedelta(days=7), NOW)
    assert figures.deployments == 0 and figures.change_failure_rate is None and figures.lead_time.median_seconds is None


@pytest.mark.parametrize(
    "text, expected",
    [("30d", NOW - timedelta(days=30)), ("12h", NOW - timedelta(hours=12)), ("2w", NOW - timedelta(weeks=2)),
     ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)), ("2026-11-01T00:00:00+01:00", datetime(2026, 10, 31, 23, tzinfo=UTC))],
)
def test_since_takes_a_duration_or_a_date(text, expected):
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text, problem", [("30 days", "give a duration"), ("2027-01-01", "not in the past"), ("-3d", "give a duration")])
def test_a_bad_since_is_refused_naming_the_option(text, problem):
    with pytest.raises(CliError, match="--since") as refused:
        parse_since(text, NOW)
    assert problem in str(refused.value)


def test_the_text_names_each_figure_and_each_service():
    since = NOW - timedelta(days=30)
    by_service = {
        service: dora_figures([r for r in MONTH if r.service == service], since, NOW) for service in ("billing", "gallery")
    }
    text = render_text(dora_figures(MONTH, since, NOW), by_service, None, since, NOW)

    assert "change-failure rate   40% (2 of 5: 1 rolled back after promotion, 1 reverted)" in text
    assert "time to restore       median 1m10s, p90 1m40s, max 1m40s (2 breaches)" in text
    assert "lead time             median 4h, p90 6h, max 6h (2 with commit_time)" in text
    assert "incidents prevented   1 (breaches rolled back before full traffic; 2 rollbacks before promotion in all)" in text
    assert any(line.split()[:2] == ["billing", "1"] for line in text.splitlines())


def test_the_prometheus_text_has_a_series_per_service_and_leaves_out_figures_without_data():
    since = NOW - timedelta(days=30)
    text = render_prometheus({"gallery": dora_figures([r for r in MONTH if r.service == "gallery"], since, NOW),
                              "billing": dora_figures([r for r in MONTH if r.service == "billing"], since, NOW)})

    assert 'release_dora_change_failure_ratio{service="gallery"} 0.5' in text
    assert 'release_dora_change_failure_ratio{service="billing"} 0' in text
    assert 'release_dora_lead_time_seconds{service="billing"}' not in text  # no commit_time: no lead time
    assert "# TYPE release_dora_incidents_prevented gauge" in text


def test_durations_read_as_people_write_them():
    assert [duration(s) for s in (None, 0, 42, 70, 3600, 90_061)] == ["-", "0s", "42s", "1m10s", "1h", "1d1h1m1s"]
