"""What the soak measures once it is over: steps applied twice, workflow task
failures, requests, leftover processes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.client import WorkflowExecutionStatus

from benchmarks.chaos.settings import RPC_TIMEOUT
from pipeline.local.env import LocalEnvironment, processes_marked
from pipeline.local.loadgen import LoadGenerator


def service_processes(local: LocalEnvironment) -> list[int]:
    return processes_marked(local.instance_prefix)


def leftovers(local: LocalEnvironment, db_file: Path) -> list[int]:
    """Every process still naming this environment: services, Traefik, the dev server."""
    return sorted(set(processes_marked(local.instance_prefix)) | set(processes_marked(str(local.state_dir)))
                  | set(processes_marked(str(db_file))))


class Figures:
    """Part of Soak (see soak.py), kept apart by concern."""

    def steps_applied_twice(self) -> list[str]:
        """Consecutive identical changes for the same service and release (its canary)."""
        entries = [json.loads(line) for line in self.local.traffic_log.read_text().splitlines() if line.strip()]
        last: dict[str, dict] = {}
        twice = []
        for entry in entries:
            previous = last.get(entry["service"])
            same = ("release_id", "canary_weight", "segments_to_canary", "stable_url", "canary_url")
            if previous is not None and all(previous.get(k) == entry.get(k) for k in same):
                twice.append(f"{entry['service']} {entry['canary_weight']}% at {entry.get('timestamp')}")
            last[entry["service"]] = entry
        return twice

    async def workflow_task_failures(self) -> tuple[list[str], int, list[str], Counter]:
        """Failed workflow tasks of every workflow (benign UnhandledCommand races apart),
        how many benign ones, the workflows still running, and the activity attempts that
        were retried (what a killed worker costs: an attempt it held waits out its
        heartbeat or start-to-close timeout), by activity type and why."""
        ids = {r.workflow_id for r in [*self.releases, *self.extra]}
        running = []
        async for execution in self.stack.client.list_workflows():
            ids.add(execution.id)
        failed, benign, timed_out = [], 0, Counter()
        for workflow_id in sorted(ids):
            handle = self.stack.client.get_workflow_handle(workflow_id)
            try:
                described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
            except Exception:
                continue
            if described.status is WorkflowExecutionStatus.RUNNING:
                running.append(workflow_id)
            activity_types: dict[int, str] = {}
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    activity_types[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                    attributes = event.activity_task_started_event_attributes
                    if attributes.attempt > 1:
                        failure = attributes.last_failure
                        why = (TimeoutType.Name(failure.timeout_failure_info.timeout_type).removeprefix("TIMEOUT_TYPE_").lower()
                               + " timeout" if failure.HasField("timeout_failure_info") else failure.message[:60])
                        timed_out[f"{activity_types.get(attributes.scheduled_event_id, '?')} ({why})"] += attributes.attempt - 1
                if event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    continue
                attributes = event.workflow_task_failed_event_attributes
                if attributes.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND:
                    benign += 1
                else:
                    cause = WorkflowTaskFailedCause.Name(attributes.cause)
                    failed.append(f"{workflow_id}: {cause}: {attributes.failure.message[:200]}")
        return failed, benign, running, timed_out

    def requests(self, loads: list[LoadGenerator]) -> tuple[int, Counter, Counter]:
        """All requests, failed ones by kind, and the unexplained ones by (service, version, status)."""
        bad_versions = {(r.service, r.version) for r in self.releases if r.bad}
        kinds, unexplained, total = Counter(), Counter(), 0
        for load in loads:
            for served in load.log:
                if self.ended and served.at > self.ended:
                    continue
                total += 1
                failed = served.status >= 500
                if not failed:
                    continue
                if served.status == 500 and (load.service, served.version) in bad_versions:
                    kinds["injected by bad canaries"] += 1
                elif self.outage and self.outage[0] <= served.at <= self.outage[1] + 5:
                    kinds["during the router outage"] += 1
                else:
                    kinds["other"] += 1
                    unexplained[(load.service, served.version, served.status, f"{served.at - self.began:.0f}s")] += 1
        return total, kinds, unexplained
