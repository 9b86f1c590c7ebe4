"""A report's content as titled tables of text: what both the HTML and the Markdown
renderers show, so the two never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.models import Analysis, MetricCheck
from pipeline.report.model import ReleaseReport


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    headers: list[str]
    rows: list[list[str]]
    empty: str


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def check_text(check: MetricCheck) -> str:
    result = {True: "pass", False: "FAIL", None: "no data"}[check.passed]
    return f"{number(check.value)} ({check.threshold}) {result}"


def summary_rows(report: ReleaseReport) -> list[list[str]]:
    state = "RUNNING: report so far" if report.running else report.state
    rows = [
        ["release", report.release_id],
        ["service", f"{report.service or '?'} {report.version or '?'} on {report.target or '?'}"],
        ["requested by", report.author or "-"],
        ["workflow", state + (f" ({report.runs} runs: it continued as new)" if report.runs > 1 else "")],
        ["outcome", report.outcome or ("not yet known" if report.running else "-")],
        ["reason", report.reason or "-"],
        ["started", when(report.started_at)],
        ["ended", when(report.ended_at) if report.ended_at else "-"],
        ["stable version", report.stable_version or "-"],
    ]
    if report.problem:
        rows.append(["request problem", report.problem])
    if report.breach is not None:
        rows.append(["breach", f"{report.breach.metric.value}: {check_text(report.breach)}; {report.breach.reason}"])
    return rows


def analysis_rows(analyses: list[Analysis]) -> tuple[list[str], list[list[str]]]:
    metrics = list(dict.fromkeys(check.metric.value for analysis in analyses for check in analysis.checks))
    headers = ["#", "time", "phase", "traffic", "verdict", *metrics, "baseline score", "decision"]
    rows = []
    for number_, analysis in enumerate(analyses, start=1):
        checks = {check.metric.value: check_text(check) for check in analysis.checks}
        rows.append(
            [
                str(number_),
                analysis.at.partition("T")[2][:8] or analysis.at,
                analysis.phase.value,
                f"{analysis.canary_weight}%",
                analysis.verdict.value,
                *[checks.get(metric, "-") for metric in metrics],
                number(analysis.score),
                analysis.decision,
            ]
        )
    return headers, rows


def baseline_table(analyses: list[Analysis]) -> Table:
    """The baseline comparison of the analysis that decided the release: the first
    whose comparison failed, else the last that had one."""
    compared = [analysis for analysis in analyses if analysis.baseline is not None]
    failed = [analysis for analysis in compared if analysis.baseline.verdict.value == "fail"]
    chosen = (failed or compared[-1:] or [None])[0]
    rows = []
    title = "Baseline comparison"
    if chosen is not None:
        title += f" (analysis at {chosen.at}, score {number(chosen.baseline.score)}: {chosen.baseline.summary})"
        rows = [
            [
                result.metric.value,
                result.verdict.value,
                number(result.canary_mean),
                number(result.stable_mean),
                number(result.p_value),
                number(result.effect),
                f"{result.weight:g}" + (" critical" if result.critical else ""),
                result.reason,
            ]
            for result in chosen.baseline.metrics
        ]
    headers = ["metric", "verdict", "canary mean", "compared mean", "p-value", "effect", "weight", "why"]
    return Table("baseline", title, headers, rows, "no baseline comparison in this release")


def tables(report: ReleaseReport) -> list[Table]:
    headers, rows = analysis_rows(report.analyses)
    return [
        Table("summary", "Summary", ["", ""], summary_rows(report), ""),
        Table(
            "timeline",
            "Timeline",
            ["time", "what", "event"],
            [[when(event.at), event.kind, event.text] for event in report.timeline],
            "no events yet",
        ),
        Table(
            "approvals",
            "Approvals",
            ["time", "stage", "approver", "comment"],
            [[when(a.at), a.stage, a.approver, a.comment] for a in report.approvals],
            "no approvals",
        ),
        Table(
            "holds",
            "Holds",
            ["time", "gate", "why", "until (the gate's word)", "cleared"],
            [[when(h.at), h.gate, h.why, when(h.until), when(h.cleared_at)] for h in report.holds],
            "never held by a gate",
        ),
        Table(
            "ignored",
            "Signals ignored and updates refused",
            ["time", "name", "sender", "why"],
            [[when(i.at), i.name, i.sender, i.why] for i in report.ignored],
            "none",
        ),
        Table("analyses", "Analyses: each metric against its threshold", headers, rows, "no analysis yet"),
        baseline_table(report.analyses),
    ]


ANALYSES_NOTE = (
    "Analyses are judged again from the metrics each analysis observed, with the release's policy; "
    "the release's own decision is its outcome above."
)
