"""Release reports (`releasectl report`): a release's history read (history.py), made a
report (model.py) and rendered as HTML with plots, Markdown or JSON (one module each)."""

from temporalio.client import WorkflowHistory

from pipeline.report.history import HistoryUnreadable, NotARelease, read_history
from pipeline.report.model import ReleaseReport, build_report


def report_of(history: WorkflowHistory) -> ReleaseReport:
    """The report of a release's history (recorded, or fetched from Temporal)."""
    return build_report(read_history(history))


__all__ = ["HistoryUnreadable", "NotARelease", "ReleaseReport", "report_of"]
