"""The Kubernetes Deployment documents the kubernetes target reads and writes: the
canary made from the stable pod template, the main container and its env (secret
references instead of values), image tags, and how far a rollout has come.
Pure functions of dicts (the API's JSON), without I/O."""

from __future__ import annotations

import copy
from typing import Any

from pipeline.decisions.service_env import secret_name

APP_LABEL, TRACK_LABEL = "app", "track"
PREVIOUS_ANNOTATION = "release-pipeline.io/previous-version"
REPLICAS_ANNOTATION = "release-pipeline.io/replicas"
"""Replicas of a staging Deployment before stop() scaled it to zero."""

Deployment = dict[str, Any]


def canary_deployment(service: str, stable: Deployment, image: str, env: dict[str, str], replicas: int) -> Deployment:
    """The canary: the stable pod template with the new image and env, labelled track=canary."""
    labels = {APP_LABEL: service, TRACK_LABEL: "canary"}
    template = copy.deepcopy(stable["spec"]["template"])
    template.setdefault("metadata", {})["labels"] = {**template["metadata"].get("labels", {}), **labels}
    container = main_container({"spec": {"template": template}}, service)
    container["image"] = image
    container["env"] = clean(merged_env(container.get("env", []), env, service))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{service}-canary", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
    }


def main_container(deployment: Deployment, service: str) -> dict[str, Any]:
    """The container named like the service, or the first one."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next((c for c in containers if c.get("name") == service), containers[0])


def merged_env(current: list[dict[str, Any]], env: dict[str, str], service: str) -> list[dict[str, Any]]:
    """The container's env with the release's entries set. Each entry names both
    `value` and `valueFrom` (one null), so a strategic merge patch that turns a value
    into a secret reference also removes the old value."""
    wanted = {name: _env_entry(name, value, service) for name, value in env.items()}
    kept = [patchable(wanted.pop(entry["name"], entry)) for entry in current]
    return kept + list(wanted.values())


def _env_entry(name: str, value: str, service: str) -> dict[str, Any]:
    key = secret_name(value)
    if key is not None:
        return {"name": name, "value": None, "valueFrom": {"secretKeyRef": {"name": f"{service}-secrets", "key": key}}}
    return {"name": name, "value": value, "valueFrom": None}


def patchable(entry: dict[str, Any]) -> dict[str, Any]:
    return {"value": None, "valueFrom": None, **entry}


def clean(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in entry.items() if value is not None} for entry in entries]


def annotations(deployment: Deployment) -> dict[str, str]:
    return deployment.get("metadata", {}).get("annotations") or {}


def with_tag(image: str, tag: str) -> str:
    """`registry:5000/team/app:1.0` -> `registry:5000/team/app:<tag>` (a digest is dropped too)."""
    repository = image.split("@", 1)[0]
    name_start = repository.rfind("/") + 1
    if ":" in repository[name_start:]:
        repository = repository[: repository.rfind(":")]
    return f"{repository}:{tag}"


def tag_of(image: str) -> str | None:
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def rollout_problem(deployment: Deployment) -> str | None:
    """Why the Deployment's rollout is not complete (as `kubectl rollout status` judges
    it), naming the conditions that hold it up; None once it is complete."""
    spec, status = deployment["spec"], deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    updated, available = status.get("updatedReplicas", 0), status.get("availableReplicas", 0)
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        problem = f"generation {deployment['metadata']['generation']} not yet observed by the controller"
    elif updated < wanted:
        problem = f"{updated} of {wanted} replicas updated"
    elif status.get("replicas", 0) > updated:
        problem = f"{status['replicas'] - updated} old replicas pending termination"
    elif available < updated:
        problem = f"{available} of {updated} updated replicas available"
    else:
        return None
    holding = [
        f"{c['type']}={c['status']} ({c.get('reason', '')}: {c.get('message', '')})"
        for c in status.get("conditions", [])
        if c.get("status") == "False" or c.get("reason") == "ProgressDeadlineExceeded"
    ]
    return problem + (f"; condition {', '.join(holding)}" if holding else "")


def past_progress_deadline(deployment: Deployment) -> bool:
    """Whether the controller gave up on the current generation: progressDeadlineSeconds
    passed without progress (a verdict on an older generation does not count)."""
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return False
    return any(c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
               for c in status.get("conditions", []))
