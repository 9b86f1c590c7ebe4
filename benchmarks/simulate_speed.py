"""Wall time of `releasectl simulate` of a default-policy release (30-minute canary,
four 5-minute steps; issue #15's target: under 2 s), as a user sees it: the command
run as a subprocess, from process start (imports, the time-skipping server, the
worker) to exit. Prints the median of N runs, and the part the command itself reports
as its simulation (`wall_seconds` of `--json`), so start-up and run can be told apart.
One run first, unmeasured. Run scripts/bootstrap.sh first: with PYTHONDONTWRITEBYTECODE
set, a module changed since its bytecode was compiled is compiled from source in every run.

    .venv/bin/python -m benchmarks.simulate_speed [--runs N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUEST = {"service": "shop", "version": "2.0.0"}
"""The default policy: nothing but what a release must name."""
RUN_TIMEOUT_SECONDS = 120
"""A run this long has hung (a workflow task that keeps failing never ends a simulation)."""


def releasectl() -> str:
    beside_python = Path(sys.executable).parent / "releasectl"
    path = str(beside_python) if beside_python.exists() else shutil.which("releasectl")
    if path is None:
        raise SystemExit("releasectl is not installed; run: pip install -e '.[test]'")
    return path


def simulate_once(command: list[str]) -> tuple[float, float]:
    """Wall seconds of one `releasectl simulate --json`, and the simulation's own part."""
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"releasectl simulate exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return wall, json.loads(done.stdout)["wall_seconds"]


def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="simulate-speed-") as directory:
        request = Path(directory) / "request.json"
        request.write_text(json.dumps(REQUEST))
        command = [releasectl(), "simulate", str(request), "--json"]
        simulate_once(command)
        timings = [simulate_once(command) for _ in range(runs)]
    walls, simulated = [wall for wall, _ in timings], [inside for _, inside in timings]
    print(
        f"releasectl simulate, default policy, {runs} runs: median {statistics.median(walls):.2f} s wall "
        f"(min {min(walls):.2f}, max {max(walls):.2f}; target < 2 s), of which the simulation itself "
        f"(imports of the worker's modules, test server, run) median {statistics.median(simulated):.2f} s",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    main(**vars(parser.parse_args()))
