"""FakeWorld for several services at once (a release train): each service has its own
stable version, warm previous version and canary, and a service named in
`failing_services` has a failing canary. Like FakeWorld, it stands in for the targets
and metrics behind the activities; the workflows and the Temporal server are real."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import activity

from pipeline.models import (
    DeployRequest,
    Observation,
    ObserveRequest,
    PreflightReport,
    PreflightRequest,
    PromotedVersion,
    PromoteRequest,
    RollbackWindow,
    ServiceRef,
    Slot,
    VersionRequest,
)
from tests.helpers.fakes import FAILING, FakeWorld


@dataclass
class TrainWorld(FakeWorld):
    failing_services: set[str] = field(default_factory=set)
    stables: dict[str, str] = field(default_factory=dict)
    warm: dict[str, str] = field(default_factory=dict)
    canaries: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(what, service, version) in the order they happened: deploy, promote, revert, retire."""

    def stable_of(self, service: str) -> str | None:
        return self.stables.get(service, self.stable)

    @activity.defn(name="preflight")
    async def preflight(self, request: PreflightRequest) -> PreflightReport:
        return PreflightReport(stable_version=self.stable_of(request.ref.service))

    @activity.defn(name="deploy_version")
    async def deploy_version(self, request: DeployRequest) -> bool:
        if request.slot is Slot.CANARY:
            self.canaries[request.ref.service] = request.version
            self.events.append(("deploy", request.ref.service, request.version))
        return await super().deploy_version(request)

    @activity.defn(name="promote_version")
    async def promote_version(self, request: PromoteRequest) -> str | None:
        service = request.ref.service
        previous, self.stables[service] = self.stable_of(service), self.canaries[service]
        if previous:
            self.warm[service] = previous
        self.events.append(("promote", service, self.stables[service]))
        return previous

    @activity.defn(name="revert_version")
    async def revert_version(self, request: VersionRequest) -> bool:
        service = request.ref.service
        self.warm[service], self.stables[service] = self.stable_of(service), request.version
        self.events.append(("revert", service, request.version))
        return True

    @activity.defn(name="retire_version")
    async def retire_version(self, request: VersionRequest) -> bool:
        self.events.append(("retire", request.ref.service, request.version))
        if self.warm.get(request.ref.service) == request.version:
            del self.warm[request.ref.service]
        return True

    @activity.defn(name="read_rollback_window")
    async def read_rollback_window(self, ref: ServiceRef) -> RollbackWindow:
        warm = self.warm.get(ref.service)
        return RollbackWindow(
            stable=self.stable_of(ref.service),
            versions=[PromotedVersion(version=warm)] if warm else [],
            warm=[warm] if warm else [],
        )

    @activity.defn(name="observe_metrics")
    async def observe_metrics(self, request: ObserveRequest) -> Observation:
        observation = await super().observe_metrics(request)
        if request.ref.service in self.failing_services:
            return observation.model_copy(update={"canary": FAILING})
        return observation
