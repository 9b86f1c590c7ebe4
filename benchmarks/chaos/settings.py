"""The soak's policies, bounds and targets."""

from __future__ import annotations

from datetime import timedelta

from tests.helpers.real_stack import FAST_POLICY

SHORT_POLICY = {**FAST_POLICY, "canary_duration_seconds": 4, "step_interval_seconds": 2}
"""--short: one analysis interval less in the canary and each step, to fit CI's minutes."""
BAD_ENV = {"GALLERY_ERROR_RATE": "0.5"}
KILL_SWITCH_STEPS = [30, 40, 50, 60, 70, 80, 90, 100]
"""Many short steps: many `set_traffic` activities to catch in flight."""

LOAD_RATE = 20
POLL_SECONDS = 0.25
RPC_TIMEOUT = timedelta(seconds=3)
RELEASE_BOUND_SECONDS = 300
"""A release still running after this is reported stuck and terminated (freeing its lock)."""
EST_RELEASE_SECONDS = 18
"""Rough duration of one release, to spread the chaos over the soak."""
WORKER_DOWN_SECONDS = 2
ROUTER_SUPERVISOR_WAIT_SECONDS = 10
KILL_SWITCH_CATCH_SECONDS = 60
KILL_SWITCH_WINDOW_SECONDS = 15
"""How long the kill-switch measurement holds other chaos off; it goes on watching
(without holding it) until its release ends, to report the real figure."""
MALFORMED_AFTER_SECONDS = 5
CLI_TIMEOUT_SECONDS = 30

TARGET_KILL_SWITCH_SECONDS = 5.0
TARGET_ROUTER_SECONDS = 5.0
TARGET_STALL_SECONDS = 45.0
STALL_PER_EXTRA_WORKER_LOSS_SECONDS = 30.0
"""A killed worker's attempt waits out its heartbeat timeout (30 s) before it is retried:
a stall that two worker kills hit is allowed that wait once more."""
TARGET_OTHER_FAILED_SHARE = 0.001
