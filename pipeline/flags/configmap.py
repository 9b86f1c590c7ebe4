"""The Kubernetes target's flag store: a ConfigMap `feature-flags-<environment>` holding
the flagd JSON (key `flags.flagd.json`, which the services mount and point FLAGD_FILE
at) and the audit log (key `audit.jsonl`, its last AUDIT_KEEP changes), written
through the official client.

Document and audit change in one write, a merge patch that names the resourceVersion
read: the API server refuses it (409) if anyone wrote in between, so two writers never
interleave, and the kubelet hands the pods the old document or the new one whole.
The `staging` environment's ConfigMap lives in the staging namespace, every other
environment's in the production namespace (PIPELINE_K8S_*_NAMESPACE).
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client import ApiException

from pipeline.decisions.flags import document_problems, parse_document
from pipeline.errors import NotFound
from pipeline.flags.base import FlagRuleBroken, FlagsInvalid, Snapshot, WriteConflict, audit_entries
from pipeline.flags.document import empty_document
from pipeline.kube import MERGE_PATCH, Kube, KubeSettings, api_client
from pipeline.models.flags import FlagChange

DOCUMENT_KEY = "flags.flagd.json"
AUDIT_KEY = "audit.jsonl"
AUDIT_KEEP = 500
"""Changes kept in the ConfigMap: with the document, well under its 1 MiB limit."""
CONFLICT = object()


def configmap_name(environment: str) -> str:
    return f"feature-flags-{environment}"


class ConfigMapStore:
    def __init__(self, kube: Kube, namespace: str, environment: str):
        self._kube = kube
        self.namespace = namespace
        self.environment = environment
        self.name = configmap_name(environment)

    @classmethod
    def for_environment(cls, environment: str) -> ConfigMapStore:
        settings = KubeSettings.from_env()
        return cls.on(Kube(api_client(settings), settings), environment)

    @classmethod
    def on(cls, kube: Kube, environment: str) -> ConfigMapStore:
        settings = kube.settings
        namespace = settings.staging_namespace if environment == "staging" else settings.namespace
        return cls(kube, namespace, environment)

    @property
    def location(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    async def read(self) -> Snapshot:
        found = await self._read()
        if found is None:
            return Snapshot(empty_document(), "")
        data = found.get("data") or {}
        if DOCUMENT_KEY not in data:
            return Snapshot(empty_document(), found["metadata"]["resourceVersion"])
        document, problems = parse_document(data[DOCUMENT_KEY], f"{self.location} key {DOCUMENT_KEY}")
        if document is None:
            raise FlagsInvalid("; ".join(problems))
        return Snapshot(document, found["metadata"]["resourceVersion"])

    async def write(self, snapshot: Snapshot, document: dict[str, Any], change: FlagChange) -> None:
        problems = document_problems(document)
        if problems:
            raise FlagRuleBroken("; ".join(problems))
        found = await self._read()
        lines = ((found or {}).get("data") or {}).get(AUDIT_KEY, "").splitlines()
        data = {
            DOCUMENT_KEY: json.dumps(document, indent=2) + "\n",
            AUDIT_KEY: "\n".join([*lines, change.model_dump_json()][-AUDIT_KEEP:]) + "\n",
        }
        if found is None and snapshot.version == "":
            outcome = await self._kube.call(f"create {self.location}", lambda: self._create(data))
        else:
            patch = {"metadata": {"resourceVersion": snapshot.version}, "data": data}
            outcome = await self._kube.call(f"patch {self.location}", lambda: self._patch(patch))
        if outcome is CONFLICT:
            raise WriteConflict(f"{self.location} changed since it was read")

    async def history(self, flag: str | None = None) -> list[FlagChange]:
        found = await self._read()
        return audit_entries(((found or {}).get("data") or {}).get(AUDIT_KEY, "").splitlines(), flag)

    async def _read(self) -> dict[str, Any] | None:
        try:
            found = await self._kube.call(
                f"read {self.location}", lambda: self._kube.core.read_namespaced_config_map(self.name, self.namespace)
            )
        except NotFound:
            return None
        return self._kube.serialize(found)

    def _create(self, data: dict[str, str]) -> Any:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                "metadata": {"name": self.name, "labels": {"app.kubernetes.io/managed-by": "release-pipeline"}}}
        return _or_conflict(lambda: self._kube.core.create_namespaced_config_map(self.namespace, body))

    def _patch(self, patch: dict[str, Any]) -> Any:
        return _or_conflict(lambda: self._kube.core.patch_namespaced_config_map(
            self.name, self.namespace, patch, _content_type=MERGE_PATCH))


def _or_conflict(operation: Any) -> Any:
    """409 (modified since read, or created by another writer) is a conflict to compute
    again, not an error to retry as it is."""
    try:
        return operation()
    except ApiException as error:
        if error.status == 409:
            return CONFLICT
        raise

