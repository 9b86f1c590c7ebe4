"""Run the soak on a fresh local stack and print its figures against their targets."""

from __future__ import annotations

import time

from benchmarks.chaos.figures import leftovers, service_processes
from benchmarks.chaos.settings import (
    LOAD_RATE,
    STALL_PER_EXTRA_WORKER_LOSS_SECONDS,
    TARGET_KILL_SWITCH_SECONDS,
    TARGET_OTHER_FAILED_SHARE,
    TARGET_ROUTER_SECONDS,
    TARGET_STALL_SECONDS,
)
from benchmarks.chaos.soak import Soak
from benchmarks.common import bench_environment
from pipeline.local.devstack import local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.temporal import exit_process


async def main(releases: int | None, services: int | None, worker_kills: int | None, short: bool, seed: int) -> None:
    releases = releases or (12 if short else 100)
    services = services or (2 if short else 4)
    worker_kills = worker_kills if worker_kills is not None else (2 if short else 10)
    deadline_seconds = 420 if short else 1500
    local = bench_environment()
    db_file = local.state_dir / "temporal.db"
    names = [f"chaos-{chr(ord('a') + i)}" for i in range(services)] + ["chaos-ks"]
    soak = None
    loads: list[LoadGenerator] = []
    began = time.monotonic()
    async with local_stack(local, temporal_db=db_file) as stack:
        loads = [LoadGenerator(local.http_url, name, rate_per_second=LOAD_RATE, segment_every=10) for name in names]
        for load in loads:
            await load.__aenter__()
        try:
            soak = Soak(stack, short=short, seed=seed)
            await soak.run(releases, services, worker_kills, deadline_seconds)
            soak.ended = time.monotonic()
        finally:
            for load in loads:
                await load.__aexit__(None, None, None)
        processes_at_end = service_processes(local)
        failed_tasks, benign, running, timed_out = await soak.workflow_task_failures()
    orphans = leftovers(local, db_file)
    worker_alive = soak.worker_alive()
    wall = time.monotonic() - began

    ok = True

    def figure(name: str, value: str, passed: bool, target: str) -> None:
        nonlocal ok
        ok &= passed
        print(f"  {'ok  ' if passed else 'FAIL'} {name}: {value} (target {target})", flush=True)

    print(f"\nchaos soak: {wall:.0f} s wall, {releases} releases over {services} services, seed {seed}", flush=True)
    expected = [r for r in soak.releases if r.as_expected]
    figure("releases ended as expected", f"{len(expected)}/{len(soak.releases)}", len(expected) == len(soak.releases), "all")
    for r in soak.releases:
        if not r.as_expected:
            print(f"       {r.workflow_id}: {r.outcome or 'did not end'}, expected {r.expected} {r.note}")
    extras_ok = all(r.as_expected for r in soak.extra)
    figure("kill-switch and malformed-input releases ended",
           ", ".join(f"{r.workflow_id}: {r.outcome or 'did not end'}" for r in soak.extra), extras_ok, "all end; kill switch rolled back")
    twice = soak.steps_applied_twice()
    figure("traffic steps applied twice", f"{len(twice)}{' ' + '; '.join(twice[:5]) if twice else ''}", not twice, "0")
    figure("workflow tasks failed", f"{len(failed_tasks)} ({benign} benign UnhandledCommand){' ' + '; '.join(failed_tasks[:3]) if failed_tasks else ''}",
           not failed_tasks, "0")
    figure("workflows stuck running", f"{len(running)}{' ' + ', '.join(running[:5]) if running else ''}", not running, "0")
    installed = {r.service for r in [*soak.releases, *soak.extra] if r.outcome == "promoted"}
    figure("service processes when the soak ended", f"{len(processes_at_end)}", len(processes_at_end) == len(installed),
           f"{len(installed)}, one stable per installed service")
    figure("orphan processes after the stack stopped", f"{len(orphans)}{' pids ' + str(orphans) if orphans else ''}",
           not orphans and not worker_alive, "0")
    total, kinds, unexplained = soak.requests(loads)
    share = kinds["other"] / total if total else 1.0
    detail = ", ".join(f"{n} {kind}" for kind, n in kinds.items()) or "none"
    top = "; ".join(f"{s} {v} {c} at {at}: {n}" for (s, v, c, at), n in unexplained.most_common(4))
    figure("failed requests", f"{sum(kinds.values())} of {total} ({detail}){' other: ' + top if top else ''}",
           total > 0 and share <= TARGET_OTHER_FAILED_SHARE, f"other <= {TARGET_OTHER_FAILED_SHARE:.1%}")
    ks = soak.figures.get("kill_switch", "not measured")
    figure("kill switch after worker loss", f"{ks:.2f} s after the restarted worker was up" if isinstance(ks, float) else ks,
           isinstance(ks, float) and ks <= TARGET_KILL_SWITCH_SECONDS, f"<= {TARGET_KILL_SWITCH_SECONDS:g} s")
    router = soak.figures.get("router", "not measured")
    figure("router killed -> all services answering", f"{router:.2f} s" if isinstance(router, float) else router,
           isinstance(router, float) and router <= TARGET_ROUTER_SECONDS, f"<= {TARGET_ROUTER_SECONDS:g} s, 2 s aimed")
    restart = soak.figures.get("server_restart")
    moving = [t - soak.restart_done_at for r in soak.releases for t, _ in r.changes
              if soak.restart_done_at and t >= soak.restart_done_at]
    figure("Temporal server restarted, workflows continued",
           f"restart {restart:.2f} s, first release moved {min(moving):.2f} s after" if restart and moving else "not done",
           bool(restart and moving), "restarted and moving")
    stalls = [(r.longest_stall(), r) for r in [*soak.releases, *soak.extra] if r.changes]
    (stall, where, since, until), stalled = max(
        stalls, key=lambda s: s[0][0] - stall_allowance(soak, s[0][2], s[0][3])) if stalls else ((0.0, "", 0.0, 0.0), None)
    allowed = stall_allowance(soak, since, until)
    figure("longest stall", f"{stall:.1f} s ({where})", stall <= allowed,
           f"<= {allowed:g} s" + ("" if allowed == TARGET_STALL_SECONDS else ", two worker losses in it"))
    if stalled and stall > TARGET_STALL_SECONDS / 2:
        chaos_then = [f"{what.split(';')[0]} at {at - soak.began:.0f}s" for at, what in soak.chaos_log if since - 5 <= at <= until]
        print(f"       chaos during it: {', '.join(chaos_then) or 'none'}")
        for line in stalled.timeline_between(since, until)[-12:]:
            print(f"       timeline {line}")
    figure("worker kills", f"{soak.worker_kills} (asked {worker_kills} + 1 for the kill switch)",
           soak.worker_kills >= worker_kills + 1, "all done")
    durations = sorted(r.ended_at - r.started_at for r in soak.releases if r.ended_at)
    if durations:
        print(f"  info release durations: median {durations[len(durations) // 2]:.1f} s, max {durations[-1]:.1f} s")
    print(f"  info activity attempts retried (a killed worker's attempt waits out its timeout): "
          f"{', '.join(f'{name} x{n}' for name, n in timed_out.most_common()) or 'none'}")
    if soak.worker_starts:
        print(f"  info worker restarts (start to \"worker started\"): {len(soak.worker_starts)}, "
              f"max {max(soak.worker_starts):.1f} s, mean {sum(soak.worker_starts) / len(soak.worker_starts):.1f} s")
    for problem in soak.failures:
        print(f"  problem: {problem}")
    for note in soak.notes:
        print(f"  note: {note}")
    print("chaos: all figures within their targets" if ok else "chaos: some figures missed their targets", flush=True)
    if not ok:
        exit_process(1)


def stall_allowance(soak: Soak, since: float, until: float) -> float:
    """The stall target, plus one heartbeat timeout for each worker loss beyond the
    first that fell inside the stall: the schedule may put two kills within seconds."""
    losses = sum(1 for at, what in soak.chaos_log if since - 5 <= at <= until and what.startswith("worker SIGKILLed"))
    return TARGET_STALL_SECONDS + STALL_PER_EXTRA_WORKER_LOSS_SECONDS * max(0, losses - 1)
