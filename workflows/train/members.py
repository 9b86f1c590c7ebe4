"""The train's members: departing in dependency order, following each child release,
forwarding train-level approvals and pauses, and undoing the train."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import retire_version
    from pipeline.decisions.train import ready_to_depart, revert_order
    from pipeline.models import MemberStatus, Outcome, Phase, ReleaseResult, ServiceRef, VersionRequest
    from workflows.release import ReleaseWorkflow

RETIRE_RETRIES = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


class Members:
    """Part of ReleaseTrainWorkflow (see workflows/train/workflow.py), kept apart by concern."""

    async def _depart_in_order(self) -> None:
        """Start members as their dependencies are promoted, until every member is
        promoted or one is not (or the kill switch is pulled)."""
        while self._failure is None and not all(m.state == "promoted" for m in self._status.members):
            self._changed = False
            if not self._status.paused:
                for service in self._ready():
                    self._depart(service)
            await self._forward()
            await workflow.wait_condition(lambda: self._changed)

    def _ready(self) -> list[str]:
        members = self._status.members
        return ready_to_depart(
            self._request.depends_on(),
            promoted={m.service for m in members if m.state == "promoted"},
            departed={m.service for m in members if m.state != "waiting"},
            running=sum(1 for m in members if m.state == "running"),
            max_parallel=self._request.policy.max_parallel,
        )

    def _depart(self, service: str) -> None:
        member = self._member(service)
        member.state, member.workflow_id = "running", f"{workflow.info().workflow_id}.{service}"
        self._note(f"{service} {member.version} departs")
        self._following[service] = asyncio.create_task(self._follow(member))

    async def _follow(self, member: MemberStatus) -> None:
        request = self._request.member(member.service).release_request()
        try:
            handle = await workflow.start_child_workflow(
                ReleaseWorkflow.run,
                request,
                id=member.workflow_id,
                result_type=ReleaseResult,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            )
            self._handles[member.service] = handle
            if self._failure is not None and self._rolls_back():
                await self._signal(member, "kill_switch", self._train_stop_order())
            result: ReleaseResult = await handle
            outcome, reason = result.outcome, result.reason
            member.previous_version = result.warm_version or member.previous_version
        except ChildWorkflowError as error:
            outcome, reason = Outcome.FAILED, str(error.cause or error)
        self._member_ended(member, outcome, reason)

    def _member_ended(self, member: MemberStatus, outcome: Outcome, reason: str) -> None:
        member.outcome, member.reason, member.pending_approval = outcome, reason, None
        member.state = "promoted" if outcome is Outcome.PROMOTED else "stopped"
        self._note(f"{member.service} {member.version}: {outcome.value}: {reason}")
        if outcome is not Outcome.PROMOTED and self._failure is None:
            self._failure = (member.service, outcome, reason)
        self._changed = True

    async def _forward(self) -> None:
        """Train-level approvals to members waiting at that stage, and pause/resume to
        the running members."""
        for member in self._running():
            stage = member.pending_approval
            given = self._forwarded.setdefault(member.service, set())
            for approver in self._status.approvals.get(stage.value, []) if stage else []:
                if (stage.value, approver) not in given:
                    given.add((stage.value, approver))
                    payload = {"stage": stage.value, "approver": approver, "comment": f"train {self._status.train}"}
                    await self._signal(member, "approve", payload)
        if self._members_paused != self._status.paused:
            self._members_paused = self._status.paused
            for member in self._running():
                await self._signal(member, "pause" if self._members_paused else "resume", {"actor": "train"})

    async def _roll_back_train(self) -> None:
        """Members not started never start; running ones are rolled back at once (their
        kill switch); then the promoted ones are reverted, dependents first."""
        self._never_start_the_rest()
        order = self._train_stop_order()
        await asyncio.gather(*(self._signal(member, "kill_switch", order) for member in self._running()))
        await self._until_running_members_end()
        promoted = [m.service for m in self._status.members if m.state == "promoted"]
        for service in revert_order(self._request.depends_on(), promoted):
            await self._revert(self._member(service), order["reason"])

    async def _revert(self, member: MemberStatus, reason: str) -> None:
        """Back to the version the member replaced, warm since the train kept it: a
        routing change, through a revert release (lock, live activity, health check)."""
        if member.previous_version is None:
            self._note(f"{member.service} {member.version} stays: it was a first install, with nothing to revert to")
            return
        member.state = "reverting"
        self._note(f"reverting {member.service} to {member.previous_version}")
        request = {
            "service": member.service,
            "version": member.previous_version,
            "target": self._request.target,
            "revert": {"actor": f"train {self._status.train}", "reason": reason},
        }
        try:
            result: ReleaseResult = await workflow.execute_child_workflow(
                ReleaseWorkflow.run, request, id=f"{member.workflow_id}.revert", result_type=ReleaseResult
            )
            outcome, detail = result.outcome, result.reason
        except ChildWorkflowError as error:
            outcome, detail = Outcome.FAILED, str(error.cause or error)
        member.state = "reverted" if outcome is Outcome.REVERTED else "promoted"
        self._note(f"{member.service}: revert {outcome.value}: {detail}")

    def _never_start_the_rest(self) -> None:
        for member in self._status.members:
            if member.state == "waiting":
                member.state = "not_started"

    async def _until_running_members_end(self) -> None:
        """Running members go on to their own end (still given the train's approvals)."""
        while self._running():
            self._changed = False
            await self._forward()
            await workflow.wait_condition(lambda: self._changed)

    def _rolls_back(self) -> bool:
        return self._request.policy.on_failure == "rollback_train" or self._status.killed

    def _train_stop_order(self) -> dict[str, str]:
        culprit, outcome, reason = self._failure
        return {"actor": f"train {self._status.train}", "reason": f"train stopped: {culprit} {outcome.value}: {reason}"}

    async def _retire_previous_versions(self) -> None:
        """The train is over: the versions its promoted members replaced are retired."""
        for member in self._status.members:
            if member.state == "promoted" and member.previous_version not in (None, member.version):
                ref = ServiceRef(
                    release_id=member.workflow_id, service=member.service, target=self._request.target, phase=Phase.FINALIZE
                )
                await workflow.execute_activity(
                    retire_version,
                    VersionRequest(ref=ref, version=member.previous_version),
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=RETIRE_RETRIES,
                )
                self._note(f"retired {member.service} {member.previous_version}")

    async def _signal(self, member: MemberStatus, name: str, payload: dict) -> None:
        handle = self._handles.get(member.service)
        if handle is None:
            return
        try:
            await handle.signal(name, payload)
        except Exception as error:  # the member ended meanwhile: nothing to tell it
            self._note(f"{name} not delivered to {member.service}: {error}")

    def _running(self) -> list[MemberStatus]:
        return [m for m in self._status.members if m.state == "running"]

    def _member(self, service: str) -> MemberStatus:
        return next(m for m in self._status.members if m.service == service)

    def _member_by_workflow(self, workflow_id: str) -> MemberStatus | None:
        return next((m for m in self._status.members if m.workflow_id == workflow_id), None)
