"""A release report as one self-contained HTML file: no script, no external resource,
the plots embedded as base64 PNG."""

from __future__ import annotations

import base64
from html import escape

from pipeline.report import plots
from pipeline.report.model import ReleaseReport
from pipeline.report.tables import ANALYSES_NOTE, Table, tables

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eceff1; }
td:first-child { white-space: nowrap; }
.state { display: inline-block; padding: 2px 10px; border-radius: 4px; color: white; background: #546e7a; }
.state.running { background: #ef6c00; }
.state.promoted { background: #2e7d32; }
.state.rolled_back, .state.failed, .state.rejected, .state.expired { background: #c62828; }
img { display: block; margin: 0.5em 0 1em; max-width: 100%; }
.note { color: #555; font-size: 0.9em; }
"""


def image(name: str, data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img class="plot" id="plot-{escape(name)}" alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'


def table(section: Table) -> str:
    if not section.rows:
        return f'<p class="empty" id="{section.key}-empty">{escape(section.empty)}</p>'
    head = "".join(f"<th>{escape(header)}</th>" for header in section.headers)
    thead = f"<thead><tr>{head}</tr></thead>" if any(section.headers) else ""
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in section.rows)
    return f'<table id="{section.key}">{thead}<tbody>{body}</tbody></table>'


def section(part: Table, extra: str = "") -> str:
    return f"<h2>{escape(part.title)}</h2>{extra}{table(part)}"


def render_html(report: ReleaseReport) -> str:
    parts = {part.key: part for part in tables(report)}
    badge = "running" if report.running else (report.outcome or report.state)
    title = f"Release report: {report.release_id}"
    metric_images = "".join(
        image(metric, data, f"{metric} against its threshold")
        for metric, data in plots.metric_plots(report.analyses).items()
    )
    score = plots.score_plot(report.analyses)
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p><span class="state {escape(badge)}" id="state">{escape(badge.replace("_", " ").upper())}</span>'
        + (
            ' <span class="note">the release is still running: this is the report so far</span>'
            if report.running
            else ""
        )
        + "</p>",
        table(parts["summary"]),
        "<h2>Traffic share over time</h2>",
        image("traffic", plots.traffic_plot(report), "traffic share over time"),
        section(parts["timeline"]),
        section(parts["approvals"]),
        section(parts["holds"]),
        section(parts["ignored"]),
        section(parts["analyses"], f'<p class="note">{escape(ANALYSES_NOTE)}</p>{metric_images}'),
        section(parts["baseline"], image("score", score, "baseline score") if score else ""),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
