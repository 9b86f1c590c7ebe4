"""The gallery's staging suites, run through the worker's catalog against real instances."""

import json

import pytest

from pipeline.models import ADR_TEST_SUITES, Slot
from pipeline.suites import load_catalog, missing_suites, run_suite
from pipeline.targets.local import LocalTarget
from tests.helpers.local import local_environment


@pytest.fixture(scope="module")
async def target(tmp_path_factory):
    env = local_environment(tmp_path_factory.mktemp("suites"))
    local = LocalTarget(env, ready_timeout_seconds=20)
    yield local
    await env.stop_all()


async def staging_url(target: LocalTarget, service: str, env: dict[str, str]) -> str:
    await target.deploy(service, Slot.STAGING, "1.0", env)
    await target.wait_ready(service, Slot.STAGING, "1.0", progress=lambda message: None)
    return target.endpoint(service, Slot.STAGING)


@pytest.fixture(scope="module")
async def healthy_url(target):
    return await staging_url(target, "healthy", {})


@pytest.fixture(scope="module")
async def broken_url(target):
    return await staging_url(target, "broken", {"GALLERY_ERROR_RATE": "1"})


@pytest.mark.parametrize("suite", ADR_TEST_SUITES)
async def test_every_suite_passes_against_a_healthy_instance(healthy_url, suite):
    result = await run_suite("gallery", suite, healthy_url, timeout_seconds=60)
    assert result.passed, result.detail
    assert result.suite == suite


@pytest.mark.parametrize("suite", ["integration", "e2e"])
async def test_suites_fail_against_an_instance_that_always_errs(broken_url, suite):
    result = await run_suite("gallery", suite, broken_url, timeout_seconds=60)
    assert not result.passed
    assert "500" in result.detail


async def test_a_suite_outside_the_catalog_fails_without_running_anything(healthy_url):
    result = await run_suite("gallery", "rm -rf /", healthy_url, timeout_seconds=5)
    assert not result.passed
    assert "not in this worker's catalog" in result.detail


async def test_a_hanging_suite_is_killed_at_its_timeout(tmp_path, monkeypatch, healthy_url):
    catalog = tmp_path / "suites.json"
    catalog.write_text(json.dumps({"gallery": {"hang": ["sleep", "30"]}}))
    monkeypatch.setenv("PIPELINE_SUITES_FILE", str(catalog))
    result = await run_suite("gallery", "hang", healthy_url, timeout_seconds=0.5)
    assert not result.passed
    assert "timed out" in result.detail
    assert result.duration_seconds < 5


def test_catalog_file_adds_services_and_unknown_services_get_the_sample_suites(tmp_path):
    catalog_file = tmp_path / "suites.json"
    catalog_file.write_text(json.dumps({"payments": {"smoke": ["true"]}}))
    catalog = load_catalog({"PIPELINE_SUITES_FILE": str(catalog_file)})
    assert missing_suites("payments", ["smoke", "unit"], catalog) == ["unit"]
    assert missing_suites("photos", ADR_TEST_SUITES, catalog) == []
    assert missing_suites("gallery", ["load"], catalog) == ["load"]
