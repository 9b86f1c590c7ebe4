"""Migrations on the kubernetes target: a batch/v1 Job runs the service's migration
command (the worker's databases file, `migrations.job`) from the release's image, in
the namespace of the database it migrates.

- The image is the service's Deployment's, tagged with the release's version (as the
  canary's is, pipeline/targets/kubernetes.py); the command is an argv list, no shell,
  with `{direction}`, `{revision}` (`base` for no schema) and `{database}` filled in.
- The database URL reaches the pod only as an env variable from a Secret reference
  (`secretKeyRef`): it is never in the Job's spec, nor in history or logs.
- The Job's name is a hash of the release, the database, the direction, the revision
  and the activity that asked for it (workflow run and activity id, the same for every
  attempt): an attempt retried after a lost worker finds the Job its predecessor made
  and waits on it, while the workflow's next call for the same step (a contract tried
  again after a wait) gets a Job of its own.
- backoffLimit 0: a migration step runs in one transaction, so a failed pod changed
  nothing and the activity's retry policy, not the Job, decides whether to run it again.
- A failed Job's reason is its pods' termination message (the end of the command's
  output, `FallbackToLogsOnError`), else its Failed condition; URL credentials in it
  are blanked.

The worker needs get and create on batch jobs and list on pods in those namespaces
(JOB_ACCESS)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pipeline.errors import NotFound, PermanentTargetError
from pipeline.kube import Kube, KubeSettings, api_client
from pipeline.logging import Redactor
from pipeline.migrations.base import MigrationFailed
from pipeline.models.databases import MigrationJobConfig
from pipeline.targets.deployments import APP_LABEL, main_container, with_tag

JOB_ACCESS = [("batch", "jobs", ("get", "create")), ("", "pods", ("list",))]
"""(api group, resource, verbs) the Jobs need in each namespace they run in."""
DATABASE_LABEL = "release-pipeline.io/migrates"
RELEASE_LABEL = "release-pipeline.io/release"
RELEASE_ANNOTATION = "release-pipeline.io/release-id"
STEP_ANNOTATION = "release-pipeline.io/migration-step"
BEFORE_ANNOTATION = "release-pipeline.io/before-revision"
"""The database's revision when the Job was made (JSON: null for no schema), so that a
retried attempt reports the revision the step started from, not the one it reached."""
BASE = "base"
MESSAGE_CHARS = 1500
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

Job = dict[str, Any]


@dataclass(frozen=True)
class JobStep:
    """One migration step, as a Job runs it."""

    release_id: str
    service: str
    database: str
    direction: str
    revision: str | None
    version: str
    scheduled_as: str
    """The activity that asked for the step: its workflow run and activity id."""

    @property
    def name(self) -> str:
        """`<service>-migrate-<hash>`: at most 61 characters, a DNS label."""
        key = json.dumps([self.release_id, self.scheduled_as, self.database, self.direction, self.revision])
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        prefix = re.sub(r"[^a-z0-9-]+", "-", self.service.lower())[:40].strip("-") or "service"
        return f"{prefix}-migrate-{digest}"

    def argv(self, command: list[str]) -> list[str]:
        """The command with its placeholders filled (checked by MigrationJobConfig)."""
        values = {"direction": self.direction, "revision": self.revision or BASE, "database": self.database}
        return [item.format(**values) for item in command]


def job_manifest(step: JobStep, config: MigrationJobConfig, image: str, pod_template: dict[str, Any],
                 before: str | None) -> Job:
    """The Job for `step`; `pod_template` is the service's, for its image pull secrets."""
    labels = {APP_LABEL: step.service, DATABASE_LABEL: step.database, RELEASE_LABEL: _label_value(step.release_id)}
    secret = getattr(config, step.database).url_secret
    container = {
        "name": "migrate",
        "image": image,
        "command": step.argv(config.command),
        "env": [{"name": config.url_variable, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}}}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if pull_secrets := pod_template.get("spec", {}).get("imagePullSecrets"):
        pod_spec["imagePullSecrets"] = pull_secrets
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": step.name, "labels": labels, "annotations": {
            RELEASE_ANNOTATION: step.release_id,
            STEP_ANNOTATION: f"{step.direction} {step.database} to {step.revision or BASE} ({step.version})",
            BEFORE_ANNOTATION: json.dumps(before),
        }},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": config.timeout_seconds,
            "ttlSecondsAfterFinished": config.keep_seconds,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def recorded_before(job: Job) -> str | None:
    """The revision the database had when the Job was made."""
    recorded = job["metadata"].get("annotations", {}).get(BEFORE_ANNOTATION)
    if recorded is None:
        raise PermanentTargetError(f"Job {job['metadata']['name']} lacks {BEFORE_ANNOTATION}: not the pipeline's")
    return json.loads(recorded)


def finished(job: Job) -> bool | None:
    """True when the Job completed, False when it failed, None while it runs."""
    conditions = {c["type"] for c in job.get("status", {}).get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in conditions:
        return True
    return False if "Failed" in conditions else None


def failed_condition(job: Job) -> str:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition["type"] == "Failed":
            return ": ".join(part for part in (condition.get("reason"), condition.get("message")) if part)
    return "failed"


def termination_message(pods: list[dict[str, Any]]) -> str:
    """What the pods' containers left when they ended, the end of it, URL credentials blanked."""
    messages = [
        terminated["message"].strip()
        for pod in pods
        for status in pod.get("status", {}).get("containerStatuses") or []
        if (terminated := (status.get("state") or {}).get("terminated")) and (terminated.get("message") or "").strip()
    ]
    return Redactor().redact(" | ".join(messages)[-MESSAGE_CHARS:])


def _label_value(text: str) -> str:
    """`text` when it is a valid label value, else a hash of it."""
    return text if LABEL_VALUE.match(text) else hashlib.sha256(text.encode()).hexdigest()[:16]


class MigrationJobs:
    """Makes, finds and waits on migration Jobs through the API server."""

    def __init__(self, kube: Kube):
        self._kube = kube
        self._batch = client.BatchV1Api(kube.apps.api_client)

    @classmethod
    def from_env(cls) -> MigrationJobs:
        settings = KubeSettings.from_env()
        return cls(Kube(api_client(settings), settings))

    def namespace(self, database: str, config: MigrationJobConfig) -> str:
        """Where the Job for `database` runs: as configured, else beside the service."""
        return getattr(config, database).namespace or self._service_namespace(database)

    def _service_namespace(self, database: str) -> str:
        """The namespace of the service's Deployment that uses `database`."""
        settings = self._kube.settings
        return settings.namespace if database == "production" else settings.staging_namespace

    async def find(self, namespace: str, name: str) -> Job | None:
        try:
            return await self._read(namespace, name)
        except NotFound:
            return None

    async def create(self, namespace: str, step: JobStep, config: MigrationJobConfig, before: str | None) -> Job:
        """The step's Job, in `namespace`, with the image of the service's Deployment
        that uses the database; the one already there when another attempt made it first."""
        where = self._service_namespace(step.database)
        deployment = self._kube.serialize(await self._kube.call(
            f"read Deployment {where}/{step.service}",
            lambda: self._kube.apps.read_namespaced_deployment(step.service, where)))
        image = with_tag(main_container(deployment, step.service)["image"], step.version)
        body = job_manifest(step, config, image, deployment["spec"]["template"], before)
        return self._kube.serialize(await self._kube.call(
            f"create Job {namespace}/{step.name}", lambda: self._create_or_read(namespace, body)))

    async def wait(self, namespace: str, name: str, progress: Callable[[str], None]) -> None:
        """Until the Job completes (its activeDeadlineSeconds bounds the wait); MigrationFailed
        (not retried) when it fails."""
        while True:
            job = await self._read(namespace, name)
            outcome = finished(job)
            if outcome:
                return
            if outcome is False:
                reason = await self._pods_message(namespace, name) or failed_condition(job)
                raise MigrationFailed(f"migration Job {namespace}/{name} failed: {reason}")
            progress(f"waiting for migration Job {namespace}/{name}")
            await asyncio.sleep(self._kube.settings.poll_seconds)

    async def _read(self, namespace: str, name: str) -> Job:
        model = await self._kube.call(f"read Job {namespace}/{name}",
                                      lambda: self._batch.read_namespaced_job(name, namespace))
        return self._kube.serialize(model)

    async def _pods_message(self, namespace: str, name: str) -> str:
        pods = await self._kube.call(f"list the Pods of Job {namespace}/{name}",
                                     lambda: self._kube.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}"))
        return termination_message(self._kube.serialize(pods).get("items") or [])

    def _create_or_read(self, namespace: str, body: Job) -> Any:
        """Runs in a thread: a 409 means another attempt made the Job first (or its
        answer to this attempt was lost): that Job is the step's."""
        try:
            return self._batch.create_namespaced_job(namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise
            return self._batch.read_namespaced_job(body["metadata"]["name"], namespace)
