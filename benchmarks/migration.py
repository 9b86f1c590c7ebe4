"""Benchmark of issue #11's targets on the real local stack (Temporal dev server, worker,
Traefik, gallery processes, the local PostgreSQL), under steady load (GETs) and a
trickle of uploads, every response counted:

- rollback with a downgraded expand: a bad release (GALLERY_BROKEN_FILE_REFS=1, expand
  0002) is caught by the consistency checks during its canary; measured from the
  workflow history, from the completion of the check_consistency activity that found
  the violation to the completion of the downgrade migrate activity (traffic is back on
  stable before that starts), target < 5 s. Between runs the bad rows are repaired, as
  an operator would, or the next release would refuse to expand;
- zero failed requests across expand, canary, promotion and contract of the demo
  migration (GALLERY_WRITES_PRIORITY=1, expand 0002, backfill 0003, contract 0004).

    .venv/bin/python -m benchmarks.migration [--runs 3]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import bench_environment, report, run_benchmark
from pipeline.local.devstack import local_stack
from pipeline.local.loadgen import LoadGenerator
from pipeline.local.uploads import Uploads
from pipeline.models import Outcome
from tests.helpers.migration_stack import (
    BASE,
    BROKEN_FILE_REFS,
    CANARY_POLICY,
    CONTRACT,
    DEMO_MIGRATION,
    EXPAND,
    LOAD_PER_SECOND,
    POLICY,
    WRITES_PRIORITY,
    delete_photos_with_missing_files,
    failed_gets,
    revision,
    rollback_seconds,
)
from tests.helpers.real_stack import SERVICE, approve_all, start_release


async def main(runs: int) -> None:
    timings: list[float] = []
    async with local_stack(bench_environment()) as stack:
        installed = await approve_all(await start_release(stack, "1.0.0", POLICY))
        assert installed.outcome is Outcome.PROMOTED, installed.reason
        async with (
            LoadGenerator(stack.local.http_url, SERVICE, rate_per_second=LOAD_PER_SECOND) as load,
            Uploads(stack.local.http_url, SERVICE) as uploads,
        ):
            for run in range(runs):
                bad = await start_release(
                    stack, f"3.0.{run}", {**CANARY_POLICY, "canary_duration_seconds": 60},
                    env=BROKEN_FILE_REFS, migration={"expand": EXPAND},
                )
                result = await approve_all(bad)
                assert result.outcome is Outcome.ROLLED_BACK and result.migration.reversed, result.reason
                assert revision(stack) == BASE
                timings.append(await rollback_seconds(bad))
                print(f"run {run + 1}: violation found to stable and schema reversed in {timings[-1]:.3f} s "
                      f"({delete_photos_with_missing_files(stack)} bad photos repaired)", flush=True)

            before_good, gets_before, uploads_before = time.monotonic(), len(load.log), len(uploads.log)
            good = await approve_all(await start_release(stack, "2.0.0", CANARY_POLICY, env=WRITES_PRIORITY,
                                                         migration=DEMO_MIGRATION))
            good_seconds = time.monotonic() - before_good
        assert good.outcome is Outcome.PROMOTED and good.migration.contracted, good.reason
        assert revision(stack) == CONTRACT
        gets, posts = load.log[gets_before:], uploads.log[uploads_before:]
        failed = [s for s in gets if s.status != 200] + [u for u in posts if not 200 <= u.status < 300]
        print(
            f"demo migration (expand {EXPAND}, canary, promotion, contract {CONTRACT}) in {good_seconds:.1f} s: "
            f"{len(failed)} failed of {len(gets)} GETs and {len(posts)} uploads (target 0)",
            flush=True,
        )
        print(f"whole benchmark: {len(failed_gets(load))} failed of {len(load.log)} GETs, "
              f"{len([u for u in uploads.log if not 200 <= u.status < 300])} failed of {len(uploads.log)} uploads", flush=True)
    report("rollback with a downgraded expand (consistency violation to schema reversed)", timings, "< 5 s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    run_benchmark(main, parser)
