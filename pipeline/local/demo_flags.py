"""The demo's feature flags (issue #13), after its releases, on the same stack and load:

  1. new-gallery-layout, the gallery page as a grid: shown to beta photographers, then
     to 25, 50 and 100% of users (each step held and judged: the users served the on
     variant against those served off), then enabled;
  2. bulk-download, whose first implementation fails 30% of its requests (see
     pipeline/gallery/flags.py): its rollout to 25% of users breaches the error-rate
     rule at the first analysis that sees it, and the workflow turns it off.

No deploy happens: FeatureRolloutWorkflow writes the flagd file the running gallery
reads through OpenFeature. Approvals the gates ask for are given as for a release.
A progress line, at each change of phase or setting and each analysis, shows who is
served the flag, the last analysis and the share of the last 3 s of requests that the
router's replies say were served the flag on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from temporalio.client import WorkflowHandle

from pipeline.gallery.flags import BULK_FLAG, LAYOUT_FLAG
from pipeline.local.devstack import Stack
from pipeline.local.loadgen import BETA, LoadGenerator
from pipeline.models.flag_rollout import FeatureRolloutStatus
from pipeline.models.flags import FeatureRolloutResult
from pipeline.terminal import analysis_summary

SERVICE = "gallery"
HOLD_SECONDS = 10
ANALYSIS = {"interval_seconds": 5, "min_requests": 5, "thresholds": {"error_rate": {"max": 0.05}}}
"""Every 5 s: beta photographers are one user in twenty, so a window holds enough of them."""


@dataclass
class FlagDemo:
    flag: str
    story: str
    expected: str
    segments: list[str] = field(default_factory=list)
    percentages: list[int] = field(default_factory=lambda: [25, 50, 100])

    def request(self) -> dict:
        return {
            "flag": self.flag, "service": SERVICE, "variants": {"on": True, "off": False}, "segments": self.segments,
            "segment_hold_seconds": HOLD_SECONDS,
            "steps": [{"percentage": percentage, "hold_seconds": HOLD_SECONDS} for percentage in self.percentages],
            "analysis": ANALYSIS, "author": "demo",
        }


ROLLOUTS = [
    FlagDemo(LAYOUT_FLAG, "the new gallery layout: beta photographers, then 25 -> 50 -> 100% of users", "enabled",
             segments=[BETA]),
    FlagDemo(BULK_FLAG, "bulk download links, whose first implementation fails 30% of its requests", "rolled_back",
             percentages=[25, 100]),
]

Say = Callable[[str], None]
Approve = Callable[[WorkflowHandle, str], Awaitable[None]]


async def run_flag_demo(stack: Stack, load: LoadGenerator, say: Say, approve: Approve) -> bool:
    """Both rollouts, one after the other; True when each ended as the story says."""
    results = [await run_rollout(stack, load, demo, say, approve) for demo in ROLLOUTS]
    say("flags: " + ", ".join(f"{result.flag} {result.outcome.value}" for result in results))
    return [result.outcome.value for result in results] == [demo.expected for demo in ROLLOUTS]


async def run_rollout(stack: Stack, load: LoadGenerator, demo: FlagDemo, say: Say, approve: Approve) -> FeatureRolloutResult:
    say(f"=== flag {demo.flag}: {demo.story}")
    handle = await stack.client.start_workflow(
        "FeatureRolloutWorkflow", demo.request(), id=f"rollout-{demo.flag}-{uuid.uuid4().hex[:6]}",
        task_queue=stack.task_queue, result_type=FeatureRolloutResult,
        static_summary=f"roll out flag {demo.flag} of {SERVICE} on local",
    )
    say(f"started workflow {handle.id}")
    shown, approved = None, set()
    while (status := await handle.query("status", result_type=FeatureRolloutStatus)).outcome is None:
        if status.pending_approval and status.pending_approval not in approved:
            await approve(handle, status.pending_approval.value)
            approved.add(status.pending_approval)
        if (moment := (status.phase, status.setting, status.analyses)) != shown:
            say(progress_line(demo.flag, status, load))
            shown = moment
        await asyncio.sleep(1)
    result = await handle.result()
    say(f"=== flag {demo.flag}: {result.outcome.value.upper()}: {result.reason}")
    return result


def progress_line(flag: str, status: FeatureRolloutStatus, load: LoadGenerator) -> str:
    setting = status.setting
    who = ", ".join([*setting.segments, f"{setting.percentage}% of users"])
    last = status.last_analysis
    analysis = f" | analysis {last.verdict.value}: {analysis_summary(last)}" if last else ""
    served = load.variants_since(time.monotonic() - 3, flag)
    share = 100 * served["on"] / max(sum(served.values()), 1)
    return f"{status.phase:<20} on for {who}{analysis} | served on (last 3 s): {share:.0f}%"
