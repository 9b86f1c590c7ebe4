"""The Kubernetes Deployment documents the kubernetes target reads and writes: the
canary made from the stable pod template, the main container and its env (secret
references instead of values), image tags, the annotations that say what a
Deployment runs and ran, and how far a rollout has come.
Pure functions of dicts (the API's JSON), without I/O."""

from __future__ import annotations

import copy
import json
from typing import Any

from pipeline.decisions.service_env import secret_name

APP_LABEL, TRACK_LABEL = "app", "track"
PREVIOUS_ANNOTATION = "release-pipeline.io/previous-version"
PREVIOUS_CONTAINER_ANNOTATION = "release-pipeline.io/previous-container"
"""On stable, beside PREVIOUS_ANNOTATION: image and env of the version it replaced
(JSON), which the warm canary Deployment runs exactly so."""
HISTORY_ANNOTATION = "release-pipeline.io/history"
"""On stable: the service's promotion history (pipeline/targets/history.py, JSON)."""
REPLICAS_ANNOTATION = "release-pipeline.io/replicas"
"""Replicas of a staging Deployment before stop() scaled it to zero."""
ROLE_ANNOTATION = "release-pipeline.io/role"
"""On the canary Deployment: CANDIDATE (a release's new version; also when absent) or
WARM (the previous stable version, running without traffic)."""
CANDIDATE, WARM = "candidate", "warm"
REQUESTED_ENV_ANNOTATION = "release-pipeline.io/requested-env"
"""On a candidate: the release's env as requested (secret references, never values),
for the promotion history."""
REPLACE_LIST = {"$patch": "replace"}
"""Strategic merge patch directive: this list replaces the live one (instead of being
merged into it by name), so that names absent from the wanted env are removed."""

Deployment = dict[str, Any]


def canary_deployment(
    service: str, stable: Deployment, image: str, env: dict[str, str], replicas: int, marks: dict[str, str]
) -> Deployment:
    """The canary: the stable pod template with the new image and env, labelled
    track=canary, annotated with `marks`."""
    labels = {APP_LABEL: service, TRACK_LABEL: "canary"}
    template = copy.deepcopy(stable["spec"]["template"])
    template.setdefault("metadata", {})["labels"] = {**template["metadata"].get("labels", {}), **labels}
    container = main_container({"spec": {"template": template}}, service)
    container["image"] = image
    container["env"] = merged_env(container.get("env", []), env, service)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{service}-canary", "labels": labels, "annotations": marks},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
    }


def candidate_marks(env: dict[str, str]) -> dict[str, str]:
    return {ROLE_ANNOTATION: CANDIDATE, REQUESTED_ENV_ANNOTATION: json.dumps(env, sort_keys=True)}


def requested_env(canary: Deployment) -> dict[str, str]:
    return json.loads(annotations(canary).get(REQUESTED_ENV_ANNOTATION, "{}"))


def role(canary: Deployment) -> str:
    return annotations(canary).get(ROLE_ANNOTATION, CANDIDATE)


def not_warm(canary: Deployment | None, service: str, version: str) -> str | None:
    """Why the canary Deployment does not keep `version` warm (its rollout may still be
    under way); None when it does."""
    if canary is None:
        return "no canary Deployment exists"
    running = runs(canary, service)
    if role(canary) != WARM:
        return f"the canary Deployment runs {running}, a release's candidate"
    if running != version:
        return f"the warm version is {running}"
    if not canary["spec"].get("replicas"):
        return f"the canary Deployment running {version} is scaled to zero"
    return None


def warm_version(canary: Deployment | None, service: str) -> str | None:
    """The version the canary Deployment keeps warm, once its rollout is complete."""
    if canary is None or rollout_problem(canary) is not None:
        return None
    version = runs(canary, service)
    return version if not_warm(canary, service, version) is None else None


def container_snapshot(deployment: Deployment, service: str) -> str:
    """The main container's image and env, as PREVIOUS_CONTAINER_ANNOTATION keeps them."""
    container = main_container(deployment, service)
    return json.dumps({"image": container["image"], "env": clean(container.get("env", []))})


def from_snapshot(snapshot: str) -> tuple[str, list[dict[str, Any]]]:
    """Image and env of a container_snapshot."""
    kept = json.loads(snapshot)
    return kept["image"], kept["env"]


def container_change(name: str, image: str, env: list[dict[str, Any]]) -> dict[str, Any]:
    """A strategic merge patch of one container: this image, and exactly this env."""
    return {"name": name, "image": image, "env": [REPLACE_LIST, *clean(env)]}


def runs(deployment: Deployment, service: str) -> str | None:
    """The version (image tag) the Deployment's pod template runs."""
    return tag_of(main_container(deployment, service)["image"])


def main_container(deployment: Deployment, service: str) -> dict[str, Any]:
    """The container named like the service, or the first one."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next((c for c in containers if c.get("name") == service), containers[0])


def merged_env(current: list[dict[str, Any]], env: dict[str, str], service: str) -> list[dict[str, Any]]:
    """The container's env with the release's entries set, in place or appended. A
    container_change writes it whole, so an entry that turns a value into a secret
    reference loses the old value."""
    wanted = {name: _env_entry(name, value, service) for name, value in env.items()}
    kept = [wanted.pop(entry["name"], entry) for entry in current]
    return kept + list(wanted.values())


def _env_entry(name: str, value: str, service: str) -> dict[str, Any]:
    key = secret_name(value)
    if key is not None:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": f"{service}-secrets", "key": key}}}
    return {"name": name, "value": value}


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


def readiness_problem(deployment: Deployment) -> str | None:
    """Why the Deployment does not serve its version now: scaled to zero, or its rollout
    not complete; None when every replica is ready."""
    if not deployment["spec"].get("replicas"):
        return "scaled to zero"
    return rollout_problem(deployment)


def past_progress_deadline(deployment: Deployment) -> bool:
    """Whether the controller gave up on the current generation: progressDeadlineSeconds
    passed without progress (a verdict on an older generation does not count)."""
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return False
    return any(c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
               for c in status.get("conditions", []))
