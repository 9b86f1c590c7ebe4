"""A release report as Markdown (for a pull request or a ticket; no plots)."""

from __future__ import annotations

from pipeline.report.model import ReleaseReport
from pipeline.report.tables import ANALYSES_NOTE, Table, tables


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(part: Table) -> str:
    if not part.rows:
        return f"_{part.empty}_"
    lines = ["| " + " | ".join(cell(h) for h in part.headers) + " |", "|" + "---|" * len(part.headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in part.rows]
    return "\n".join(lines)


def render_markdown(report: ReleaseReport) -> str:
    heading = f"# Release report: {report.release_id}"
    if report.running:
        heading += "\n\n**RUNNING**: the release is still running; this is the report so far."
    sections = [heading]
    for part in tables(report):
        if part.key == "summary":
            sections.append("\n".join(f"- **{name}**: {cell(value)}" for name, value in part.rows))
            continue
        note = f"\n\n_{ANALYSES_NOTE}_" if part.key == "analyses" else ""
        sections.append(f"## {part.title}{note}\n\n{table(part)}")
    return "\n\n".join(sections) + "\n"
