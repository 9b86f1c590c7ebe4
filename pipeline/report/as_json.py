"""A release report as JSON, for scripts: the report model, with `running` spelled out."""

from __future__ import annotations

import json

from pipeline.report.model import ReleaseReport


def render_json(report: ReleaseReport) -> str:
    data = {"running": report.running, **report.model_dump(mode="json")}
    return json.dumps(data, indent=2) + "\n"
