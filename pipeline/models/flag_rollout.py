"""What a FeatureRolloutWorkflow reports (its `status` query). Apart from
pipeline/models/flags.py because it holds a release's approvals and analyses, whose
models import the activity messages, which import the flags models."""

from __future__ import annotations

from pydantic import Field

from pipeline.models.analysis import Analysis
from pipeline.models.base import Stage, Strict
from pipeline.models.flags import FlagOutcome, FlagSetting
from pipeline.models.gates import ReleaseGates
from pipeline.models.status import Approval


class FeatureRolloutStatus(Strict):
    """The `status` query's answer."""

    rollout_id: str
    flag: str
    environment: str
    phase: str = "validate"
    setting: FlagSetting = Field(default_factory=FlagSetting)
    gates: ReleaseGates | None = None
    pending_approval: Stage | None = None
    approval_deadline: str | None = None
    approvals: list[Approval] = Field(default_factory=list)
    last_analysis: Analysis | None = None
    analyses: int = 0
    outcome: FlagOutcome | None = None
    reason: str | None = None
    timeline: list[str] = Field(default_factory=list)
    ignored_signals: list[str] = Field(default_factory=list)
