"""The Temporal UI as an operator sees it (headless Chromium, Debian's package, driven
by Playwright): on the real dev server with its Web UI, a release started by
`releasectl start` and run to the end by a worker (activities are the FakeWorld's: no
target runs here) shows in the list with its service, version and outcome as columns
(the README's saved view), the query `WorkflowType="ReleaseWorkflow"` hides the lock
workflow, and the release's page shows its static summary and outcome."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pipeline import cli, search_attributes
from tests.helpers.fakes import FakeWorld
from tests.helpers.harness import TASK_QUEUE, installed_binary
from tests.helpers.real_stack import QUICK_POLICY
from tests.test_report import CHROMIUM, CHROMIUM_ARGS
from workflows import ALL as WORKFLOWS

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed (scripts/system-deps.sh installs it)"
)

COLUMNS = ["Status", "Workflow ID", "Type", "ReleaseService", "ReleaseVersion", "ReleaseOutcome", "Start", "End"]
"""The README's saved view: its columns, as the UI keeps them (per namespace, in the browser)."""
RELEASES_ONLY = 'WorkflowType="ReleaseWorkflow"'
WAIT_MS = 30_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def dev_server_with_ui() -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
        ui=True,
        ui_port=port,
    )
    async with env:
        yield env, f"http://127.0.0.1:{port}/namespaces/default"


async def run_release(env: WorkflowEnvironment, monkeypatch, capsys) -> str:
    """A release started as an operator would, run to its end by a worker."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
    monkeypatch.setenv("PIPELINE_TASK_QUEUE", TASK_QUEUE)
    monkeypatch.delenv("PIPELINE_GATES_FILE", raising=False)
    release_id = f"release-ui-{uuid.uuid4().hex[:6]}"
    argv = ["start", "gallery", "2.0.0", "--id", release_id, "--policy", json.dumps(QUICK_POLICY)]
    async with Worker(env.client, task_queue=TASK_QUEUE, workflows=WORKFLOWS, activities=FakeWorld().activities()):
        assert await cli.run(cli.build_parser().parse_args(argv)) == 0
        async with asyncio.timeout(120):
            result = await env.client.get_workflow_handle(release_id).result()
    capsys.readouterr()
    assert result["outcome"] == "promoted"
    return release_id


async def frame_showing(page, text: str) -> None:
    """Wait (bounded) until the page or one of its frames shows `text`: the UI renders a
    summary as Markdown in a sandboxed iframe."""
    from playwright.async_api import Error

    async with asyncio.timeout(WAIT_MS / 1000):
        while True:
            for frame in page.frames:
                try:
                    if text in await frame.inner_text("body", timeout=1_000):
                        return
                except Error:
                    pass  # a frame still loading, or gone
            await asyncio.sleep(0.2)


async def test_list_and_release_page_show_summary_and_outcome(dev_server_with_ui, monkeypatch, capsys, tmp_path):
    from playwright.async_api import async_playwright

    env, ui = dev_server_with_ui
    release_id = await run_release(env, monkeypatch, capsys)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(f"{ui}/workflows", timeout=WAIT_MS)
            await page.evaluate(
                "columns => localStorage.setItem('namespace-workflow-table-columns', JSON.stringify({default: columns}))",
                [{"label": label} for label in COLUMNS],
            )

            await page.goto(f"{ui}/workflows", timeout=WAIT_MS)
            await page.wait_for_selector(f"tbody tr:has-text('{release_id}')", timeout=WAIT_MS)
            everything = await page.inner_text("tbody")
            assert "release-lock-gallery" in everything and "ServiceLockWorkflow" in everything

            await page.goto(f"{ui}/workflows?query={quote(RELEASES_ONLY)}", timeout=WAIT_MS)
            row = page.locator(f"tbody tr:has-text('{release_id}')")
            await row.wait_for(timeout=WAIT_MS)
            cells = [cell.strip() for cell in await row.locator("td").all_inner_texts()]
            assert ["ReleaseWorkflow", "gallery", "2.0.0", "promoted"] == cells[cells.index(release_id) + 1 :][:4]
            assert "release-lock-gallery" not in await page.inner_text("tbody")
            await page.screenshot(path=str(tmp_path / "list.png"))

            await page.goto(f"{ui}/workflows/{release_id}", timeout=WAIT_MS)
            await page.get_by_text("User Metadata", exact=True).click(timeout=WAIT_MS)
            await frame_showing(page, "release gallery 2.0.0 on local")
            await page.screenshot(path=str(tmp_path / "release.png"))
            await page.get_by_text("Search Attributes", exact=True).click(timeout=WAIT_MS)
            await page.wait_for_selector("text=ReleaseOutcome", timeout=WAIT_MS)
            attributes = await page.inner_text("main")
        finally:
            await browser.close()
    assert "promoted" in attributes
    assert (tmp_path / "list.png").stat().st_size > 10_000 and (tmp_path / "release.png").stat().st_size > 10_000
