"""The worker's catalog of staging test suites: (service, suite name) -> command.

A release request only names suites; the commands come from this catalog, which
belongs to whoever runs the worker, so a request can never run arbitrary commands
on it. The default catalog runs the sample gallery's suites; the JSON file named by
PIPELINE_SUITES_FILE, `{"<service>": {"<suite>": ["argv", ...]}}`, adds services
and overrides suites. Every service not in the catalog runs the sample app on the
local target, so it gets the sample app's suites.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import structlog

from pipeline.models import ADR_TEST_SUITES, SuiteResult

log = structlog.get_logger()

SAMPLE_SERVICE = "gallery"
DETAIL_LINES = 20

Catalog = dict[str, dict[str, list[str]]]


def default_catalog() -> Catalog:
    return {
        SAMPLE_SERVICE: {
            suite: [sys.executable, "-m", f"pipeline.gallery.suites.{suite}"] for suite in ADR_TEST_SUITES
        }
    }


def load_catalog(environ: dict[str, str] | None = None) -> Catalog:
    """The default catalog merged with the file named by PIPELINE_SUITES_FILE, if any."""
    catalog = default_catalog()
    path = (os.environ if environ is None else environ).get("PIPELINE_SUITES_FILE")
    if path:
        for service, suites in _read_catalog_file(Path(path)).items():
            catalog.setdefault(service, {}).update(suites)
    return catalog


def _read_catalog_file(path: Path) -> Catalog:
    catalog = json.loads(path.read_text())
    well_formed = isinstance(catalog, dict) and all(
        isinstance(suites, dict)
        and all(isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv) for argv in suites.values())
        for suites in catalog.values()
    )
    if not well_formed:
        raise ValueError(f'{path}: expected {{"<service>": {{"<suite>": ["argv", ...]}}}}')
    return catalog


def suite_command(service: str, suite: str, catalog: Catalog | None = None) -> list[str] | None:
    catalog = load_catalog() if catalog is None else catalog
    return catalog.get(service, catalog[SAMPLE_SERVICE]).get(suite)


def missing_suites(service: str, suites: list[str], catalog: Catalog | None = None) -> list[str]:
    catalog = load_catalog() if catalog is None else catalog
    return [suite for suite in suites if suite_command(service, suite, catalog) is None]


async def run_suite(service: str, suite: str, target_url: str, timeout_seconds: float) -> SuiteResult:
    """Run one catalog suite against target_url. A suite that is not in the catalog,
    fails or times out gives a failed result; its last output lines are the detail."""
    started = time.monotonic()
    command = suite_command(service, suite)
    if command is None:
        return SuiteResult(suite=suite, passed=False, duration_seconds=0.0,
                           detail=f"suite {suite!r} is not in this worker's catalog for {service!r}")
    process = await asyncio.create_subprocess_exec(
        *command, env={**os.environ, "TARGET_URL": target_url}, start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_seconds)
        passed, detail = process.returncode == 0, _last_lines(output)
    except asyncio.TimeoutError:
        _kill_group(process.pid)
        await process.wait()
        passed, detail = False, f"timed out after {timeout_seconds:g}s"
    except asyncio.CancelledError:  # the release was stopped: leave no suite running
        _kill_group(process.pid)
        raise
    result = SuiteResult(suite=suite, passed=passed, duration_seconds=round(time.monotonic() - started, 3),
                         detail=detail)
    log.info("suite.finished", service=service, suite=suite, passed=passed, seconds=result.duration_seconds)
    return result


def _last_lines(output: bytes) -> str:
    return "\n".join(output.decode(errors="replace").strip().splitlines()[-DETAIL_LINES:])


def _kill_group(pid: int) -> None:
    """The suite runs in its own session: kill it together with anything it started."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
