"""A release report's plots as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot  # noqa: E402 -- after choosing the backend
from matplotlib.figure import Figure  # noqa: E402

from pipeline.models import Analysis  # noqa: E402
from pipeline.report.model import ReleaseReport  # noqa: E402

THRESHOLD = re.compile(r"^\s*[<>]=?\s*(?P<value>[-+0-9.eE]+)\s*$")
PASS_COLOR, FAIL_COLOR, NO_DATA_COLOR = "#2e7d32", "#c62828", "#9e9e9e"


@contextmanager
def figure(width: float = 8.0, height: float = 2.6) -> Iterator[Figure]:
    fig = pyplot.figure(figsize=(width, height), dpi=100)
    try:
        yield fig
    finally:
        pyplot.close(fig)


def png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def traffic_plot(report: ReleaseReport) -> bytes:
    """The new version's share of traffic over time, with the phases shaded."""
    with figure() as fig:
        axes = fig.add_subplot()
        times = [point.at for point in report.traffic]
        axes.step(times, [point.weight for point in report.traffic], where="post", color="#1565c0", linewidth=2)
        end = times[-1]
        for index, entry in enumerate(report.phases):
            until = report.phases[index + 1].at if index + 1 < len(report.phases) else end
            axes.axvspan(entry.at, until, alpha=0.08 + 0.07 * (index % 2), color="#607d8b", linewidth=0)
            if (until - entry.at) >= (end - times[0]) / 25:
                axes.text(entry.at, 50, f" {entry.phase}", rotation=90, va="center", fontsize=7, color="#37474f")
        axes.set_ylim(-5, 105)
        axes.set_ylabel("traffic on new version (%)")
        axes.set_title("Traffic share over time (shaded: phases)")
        fig.autofmt_xdate()
        return png(fig)


def threshold_value(threshold: str) -> float | None:
    match = THRESHOLD.match(threshold)
    return float(match["value"]) if match else None


def metric_plots(analyses: list[Analysis]) -> dict[str, bytes]:
    """One plot per metric: its value at each analysis against its threshold."""
    metrics = list(dict.fromkeys(check.metric.value for analysis in analyses for check in analysis.checks))
    return {metric: metric_plot(metric, analyses) for metric in metrics}


def metric_plot(metric: str, analyses: list[Analysis]) -> bytes:
    with figure(height=2.4) as fig:
        axes = fig.add_subplot()
        numbers, values, colors, threshold = [], [], [], None
        for number, analysis in enumerate(analyses, start=1):
            for check in analysis.checks:
                if check.metric.value == metric:
                    threshold = check.threshold
                    numbers.append(number)
                    values.append(check.value if check.value is not None else 0)
                    colors.append({True: PASS_COLOR, False: FAIL_COLOR, None: NO_DATA_COLOR}[check.passed])
        axes.scatter(numbers, values, c=colors, s=18, zorder=3)
        limit = threshold_value(threshold or "")
        if limit is not None:
            axes.axhline(limit, color=FAIL_COLOR, linestyle="--", linewidth=1, label=f"threshold {threshold}")
            axes.legend(loc="upper left", fontsize="small")
        axes.set_xlabel("analysis")
        axes.set_title(f"{metric} at each analysis (green pass, red fail, grey no data)")
        return png(fig)


def score_plot(analyses: list[Analysis]) -> bytes | None:
    """The baseline comparison's score at each analysis that had one."""
    scored = [
        (number, analysis.score) for number, analysis in enumerate(analyses, start=1) if analysis.score is not None
    ]
    if not scored:
        return None
    with figure(height=2.4) as fig:
        axes = fig.add_subplot()
        axes.plot([n for n, _ in scored], [s for _, s in scored], marker="o", markersize=3, color="#6a1b9a")
        axes.set_ylim(-5, 105)
        axes.set_xlabel("analysis")
        axes.set_ylabel("score")
        axes.set_title("Baseline comparison score (0-100)")
        return png(fig)
