"""The `migrate` activity on the kubernetes target: a batch/v1 Job from the release's
image runs the migration command, through the real `kubernetes` client over real HTTP.

A Kubernetes API server cannot run here, so the API server double
(tests/helpers/k8s_double.py) stands in for it, and each test plays the cluster's Job
controller: once a Job exists, the test runs its step with Alembic on a real
PostgreSQL (what the Job's pod would do) and marks the Job succeeded or failed
(`finish_job`). The worker reads the database's version table itself, before and after."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.migrations import migrate
from pipeline.database import DATABASES_FILE_VARIABLE
from pipeline.errors import PermanentTargetError, TargetError
from pipeline.migrations.alembic import AlembicTool
from pipeline.models import MigrationRequest, ServiceRef
from tests.helpers.k8s_double import KubeDouble
from tests.helpers.k8s_fixtures import IMAGE, PRODUCTION, SERVICE, STAGING, worker_env
from tests.test_migrations import TEST_REVISIONS

REF = ServiceRef(release_id="r-42/expand", service=SERVICE, target="kubernetes")
COMMAND = ["alembic", "-x", "database={database}", "{direction}", "{revision}"]
SECRETS = {"production": {"url_secret": {"name": "gallery-db", "key": "url"}},
           "staging": {"url_secret": {"name": "gallery-db-staging", "key": "url"}}}
POLLS = 500


def job_config(**changes: Any) -> dict[str, Any]:
    return {"command": COMMAND, **SECRETS, **changes}


@pytest.fixture
def configure(kube_double: KubeDouble, database: str, tmp_path, monkeypatch):
    """Point the worker at the double and write its databases file, both databases of
    the service on the test's fresh PostgreSQL database."""
    for name, value in worker_env(kube_double, tmp_path).items():
        monkeypatch.setenv(name, value)

    def configure(job: dict[str, Any] | None) -> None:
        migrations = {"tool": "alembic", "script_location": str(TEST_REVISIONS), "job": job}
        config = {"services": {SERVICE: {"production": {"url": database}, "staging": {"url": database},
                                         "migrations": migrations}}}
        path = tmp_path / "databases.json"
        path.write_text(json.dumps(config))
        monkeypatch.setenv(DATABASES_FILE_VARIABLE, str(path))

    configure(job_config())
    return configure


def request(database: str = "production", revision: str | None = "0002", direction: str = "upgrade",
            version: str | None = "2.0.0") -> MigrationRequest:
    return MigrationRequest(ref=REF, database=database, revision=revision, direction=direction, version=version)


def attempt(activity_id: str = "7", heartbeats: list | None = None) -> ActivityEnvironment:
    """One attempt of the activity the workflow scheduled as `activity_id`."""
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(ActivityEnvironment.default_info(), activity_id=activity_id)
    if heartbeats is not None:
        environment.on_heartbeat = lambda *details: heartbeats.extend(details)
    return environment


def start(environment: ActivityEnvironment, migration: MigrationRequest) -> asyncio.Task:
    return asyncio.ensure_future(environment.run(migrate, migration))


async def jobs_made(double: KubeDouble, namespace: str, count: int = 1) -> list[dict[str, Any]]:
    """The Jobs in `namespace` once there are `count` of them (the activity made them)."""
    for _ in range(POLLS):
        if len(names := double.names("jobs", namespace)) >= count:
            return [double.get("jobs", namespace, name) for name in names]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {count} Job(s) in {namespace}: {double.names('jobs', namespace)}")


def run_pod(database: str, job: dict[str, Any]) -> None:
    """What the Job's pod does: its command's step, with Alembic, on the database."""
    *_, direction, revision = job["spec"]["template"]["spec"]["containers"][0]["command"]
    tool = AlembicTool(TEST_REVISIONS)
    tool.upgrade(database, revision) if direction == "upgrade" else tool.downgrade(database, revision)


async def test_the_job_runs_the_new_image_with_the_command_filled_and_the_url_from_a_secret(
        kube_double, configure, database):
    heartbeats: list = []
    running = start(attempt(heartbeats=heartbeats), request("staging"))
    (job,) = await jobs_made(kube_double, STAGING)

    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"{IMAGE}:2.0.0"
    assert container["command"] == ["alembic", "-x", "database=staging", "upgrade", "0002"]
    assert container["env"] == [{"name": "DATABASE_URL", "valueFrom": {
        "secretKeyRef": {"name": "gallery-db-staging", "key": "url"}}}]
    spec = job["spec"]
    assert (pod["restartPolicy"], spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]
            ) == ("Never", 0, 1200, 86400)
    assert job["metadata"]["labels"]["app"] == SERVICE
    assert job["metadata"]["labels"]["release-pipeline.io/release"] != REF.release_id, "a '/' is no label value"
    assert len(job["metadata"]["name"]) <= 63
    sent = json.dumps([body for _, _, _, body in kube_double.requests])
    assert database not in sent and database.rsplit("/", 1)[-1] not in sent, "no URL, not even the database's name"
    assert kube_double.names("jobs", PRODUCTION) == []

    run_pod(database, job)
    kube_double.finish_job(STAGING, job["metadata"]["name"], succeeded=True)
    result = await running
    assert (result.database, result.before, result.after, result.changed) == ("staging", None, "0002", True)
    assert any("waiting for Job" in str(detail) for detail in heartbeats)


async def test_a_configured_namespace_runs_the_job_there_with_the_services_image(kube_double, configure, database):
    configure(job_config(production={**SECRETS["production"], "namespace": "migrations"}))
    running = start(attempt(), request())
    (job,) = await jobs_made(kube_double, "migrations")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:2.0.0"
    run_pod(database, job)
    kube_double.finish_job("migrations", job["metadata"]["name"], succeeded=True)
    assert (await running).after == "0002"


async def test_an_attempt_retried_after_a_lost_worker_waits_on_the_same_job(kube_double, configure, database):
    first = start(attempt(), request())
    (job,) = await jobs_made(kube_double, PRODUCTION)
    first.cancel()  # the worker is lost; the Job runs on
    with pytest.raises(asyncio.CancelledError):
        await first
    run_pod(database, job)
    kube_double.finish_job(PRODUCTION, job["metadata"]["name"], succeeded=True)

    result = await attempt().run(migrate, request())
    assert (result.before, result.after, result.changed) == (None, "0002", True), "`before` as the Job recorded it"
    assert [method for method, _, _ in kube_double.writes("jobs")] == ["POST"]
    assert kube_double.names("jobs", PRODUCTION) == [job["metadata"]["name"]]


async def test_a_step_already_done_makes_no_job(kube_double, configure, database):
    AlembicTool(TEST_REVISIONS).upgrade(database, "0003")
    result = await attempt().run(migrate, request(revision="0002"))
    assert (result.before, result.after, result.changed) == ("0003", "0003", False)
    assert kube_double.writes("jobs") == []


async def test_a_failed_job_fails_the_step_without_retry_with_the_pods_words(kube_double, configure, database):
    running = start(attempt(), request(revision="0004"))
    (job,) = await jobs_made(kube_double, PRODUCTION)
    kube_double.finish_job(PRODUCTION, job["metadata"]["name"], succeeded=False, message=(
        "psycopg.errors.DivisionByZero: division by zero\n"
        "while connecting with postgresql://gallery:s3cretpass@db.internal/gallery"))
    with pytest.raises(ApplicationError) as raised:
        await running
    assert (raised.value.type, raised.value.non_retryable) == ("MigrationFailed", True)
    assert "division by zero" in str(raised.value) and job["metadata"]["name"] in str(raised.value)
    assert "s3cretpass" not in str(raised.value)

    again = start(attempt(activity_id="9"), request(revision="0004"))
    names = [made["metadata"]["name"] for made in await jobs_made(kube_double, PRODUCTION, count=2)]
    (own,) = set(names) - {job["metadata"]["name"]}  # the workflow's next call runs a Job of its own
    kube_double.finish_job(PRODUCTION, own, succeeded=False,
                           reason=("DeadlineExceeded", "Job was active longer than specified deadline"))
    with pytest.raises(ApplicationError, match="DeadlineExceeded: Job was active longer"):
        await again


async def test_a_job_that_leaves_the_database_elsewhere_is_a_failure(kube_double, configure):
    running = start(attempt(), request())
    (job,) = await jobs_made(kube_double, PRODUCTION)
    kube_double.finish_job(PRODUCTION, job["metadata"]["name"], succeeded=True)  # its pod migrated nothing
    with pytest.raises(ApplicationError, match="succeeded, but production is at base, not 0002") as raised:
        await running
    assert raised.value.non_retryable


async def test_an_unreachable_api_server_is_left_to_retries(kube_double, configure):
    kube_double.fail_next(503, times=20)
    with pytest.raises(TargetError, match="HTTP 503") as raised:
        await attempt().run(migrate, request())
    assert not isinstance(raised.value, PermanentTargetError)


@pytest.mark.parametrize(("job", "version", "problem"), [
    (job_config(command=["alembic", "upgrade", "{revision}"]), "2.0.0", "command must contain {direction}"),
    (job_config(command=["sh", "-c", "alembic {direction} {revision} --url {url}"]), "2.0.0",
     r"unknown placeholder\(s\) \{url\}"),
    ({"command": COMMAND, "production": SECRETS["production"]}, "2.0.0", "job.staging: Field required"),
    (job_config(), None, "names no version"),
])
async def test_configuration_errors_are_clear_and_not_retried(kube_double, configure, job, version, problem):
    configure(job)
    with pytest.raises(ApplicationError, match=problem) as raised:
        await attempt().run(migrate, request(version=version))
    assert raised.value.non_retryable
    assert kube_double.writes("jobs") == []
