"""Temporal activities: the only code that touches the world (targets, routers,
metrics, test suites). Each is idempotent, so Temporal may retry it safely."""

from activities.consistency import check_consistency
from activities.deploy import (
    deploy_version,
    preflight,
    promote_canary,
    promote_version,
    read_rollback_window,
    retire_version,
    revert_version,
    set_traffic,
    stop_version,
    version_health,
    wait_ready,
)
from activities.gates import check_calendar, check_live_activity, load_gates, notify
from activities.flags import apply_flag_stage, kill_flag, read_flag_state
from activities.lock import release_state
from activities.metrics import observe_metrics
from activities.migrations import check_expand, migrate
from activities.suites import run_test_suite

ALL = [
    preflight,
    deploy_version,
    wait_ready,
    run_test_suite,
    set_traffic,
    stop_version,
    promote_canary,
    promote_version,
    revert_version,
    read_rollback_window,
    version_health,
    retire_version,
    observe_metrics,
    load_gates,
    check_calendar,
    check_live_activity,
    notify,
    release_state,
    check_consistency,
    migrate,
    check_expand,
    read_flag_state,
    apply_flag_stage,
    kill_flag,
]
