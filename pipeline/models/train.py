"""Release trains: several services released together, in dependency order, rolled back
together (workflows/train/). A member is a release request as a release takes it, plus
the members it needs promoted first; its target is the train's."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pipeline.decisions.train import graph_problems
from pipeline.models.adapters import TargetName
from pipeline.models.base import Input, Outcome, Stage, Strict
from pipeline.models.request import ReleaseRequest

TRAIN_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
MAX_MEMBERS = 20


class TrainMember(ReleaseRequest):
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_MEMBERS)
    keep_previous: Literal[True] = True
    """A member's previous version stays warm until the train ends."""

    @model_validator(mode="after")
    def _releases_a_version(self) -> TrainMember:
        if self.revert is not None:
            raise ValueError("revert: a train member releases a version; the train reverts its members itself")
        return self

    def release_request(self) -> dict[str, Any]:
        """What the member's release workflow is started with: its previous version kept
        warm until the train ends."""
        return self.model_dump(mode="json", exclude={"depends_on", "revert"}, exclude_unset=True) | {"keep_previous": True}


class TrainPolicy(Input):
    on_failure: Literal["rollback_train", "stop"] = "rollback_train"
    """rollback_train: a failed member stops the train, rolls back the running members and
    reverts the promoted ones; stop: promoted members stay, the rest do not start."""
    approvals: Literal["per_release", "per_train"] = "per_release"
    """per_train: one `approve` to the train per stage (and approver) covers every member."""
    max_parallel: int = Field(2, ge=1, le=MAX_MEMBERS)


class TrainRequest(Input):
    """The input of ReleaseTrainWorkflow."""

    train: str = Field(pattern=TRAIN_PATTERN)
    target: TargetName = "local"
    releases: list[TrainMember] = Field(min_length=1, max_length=MAX_MEMBERS)
    policy: TrainPolicy = Field(default_factory=TrainPolicy)

    @model_validator(mode="before")
    @classmethod
    def _members_run_on_the_trains_target(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or not isinstance(raw.get("releases"), list):
            return raw
        target = raw.get("target", "local")
        for index, member in enumerate(raw["releases"]):
            if isinstance(member, dict):
                if member.get("target", target) != target:
                    raise ValueError(f"releases.{index}.target: a member runs on the train's target ({target})")
                raw["releases"][index] = {**member, "target": target}
        return raw

    @model_validator(mode="after")
    def _a_valid_graph(self) -> TrainRequest:
        services = [member.service for member in self.releases]
        twice = sorted({service for service in services if services.count(service) > 1})
        if twice:
            raise ValueError(f"releases: each service once; {', '.join(twice)} more than once")
        problems = graph_problems(self.depends_on())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def depends_on(self) -> dict[str, list[str]]:
        return {member.service: list(member.depends_on) for member in self.releases}

    def member(self, service: str) -> TrainMember:
        return next(member for member in self.releases if member.service == service)


MemberState = Literal["waiting", "running", "promoted", "stopped", "not_started", "reverting", "reverted"]


class MemberReport(Strict):
    """What a member release tells its train as it goes (the `member_update` signal)."""

    release_id: str
    phase: str
    canary_weight: int = 0
    pending_approval: Stage | None = None
    stable_version: str | None = None
    warm_version: str | None = None


class MemberStatus(Strict):
    service: str
    version: str
    depends_on: list[str] = Field(default_factory=list)
    state: MemberState = "waiting"
    workflow_id: str | None = None
    phase: str | None = None
    canary_weight: int = 0
    pending_approval: Stage | None = None
    outcome: Outcome | None = None
    reason: str | None = None
    previous_version: str | None = None
    """The version it replaced, kept warm until the train ends."""


class TrainEntry(Strict):
    at: str
    message: str


class TrainStatus(Strict):
    train: str
    members: list[MemberStatus] = Field(default_factory=list)
    approvals: dict[str, list[str]] = Field(default_factory=dict)
    """per_train approvals given to the train, by stage."""
    paused: bool = False
    killed: bool = False
    outcome: Outcome | None = None
    reason: str | None = None
    culprit: str | None = None
    """The member whose outcome ended the train."""
    timeline: list[TrainEntry] = Field(default_factory=list)


class TrainResult(Strict):
    train: str
    outcome: Outcome
    reason: str
    culprit: str | None = None
    members: list[MemberStatus] = Field(default_factory=list)
