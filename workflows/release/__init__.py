"""ReleaseWorkflow: one release of one service, from staging to full production.

workflow.py holds the class, its signal, update and query handlers and the phases,
and reads like ADR-017; each other module of this package holds one concern of it
(gates, traffic, approvals, the lock, continue-as-new, notifications, the timeline,
waiting, activity calls) as a part the class is made of."""

from workflows.release.stopped import ReleaseStopped
from workflows.release.workflow import ReleaseWorkflow

__all__ = ["ReleaseStopped", "ReleaseWorkflow"]
