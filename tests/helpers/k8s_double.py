"""A Kubernetes API server double on loopback, for testing the kubernetes target
through the real `kubernetes` client over real HTTP.

What it implements, with the real API's semantics:

- Namespaces: GET only (the namespaces given to the constructor exist).
- Deployments (apps/v1): GET, POST (409 AlreadyExists), PATCH, DELETE. metadata.generation
  rises when the spec changes; `status` is never written by a client, only by the
  double's own "controller", which completes a rollout `rollout_delay` seconds after
  a spec change (status replicas = spec replicas, observedGeneration = generation),
  or never for the names in `stuck` (the rollout then shows Available=False and
  Progressing=False/ProgressDeadlineExceeded, as a real one past its deadline does)
  until `recover` completes it.
- VirtualServices and DestinationRules (networking.istio.io/v1), HTTPRoutes
  (gateway.networking.k8s.io/v1): GET, POST, PATCH.
- Jobs (batch/v1): GET, POST (409 AlreadyExists). A created Job shows `active: 1`
  until a test plays the Job controller with `finish_job`, which sets the Complete or
  Failed condition and leaves the Job's pod (labelled `job-name`) with its container
  terminated and its termination message, as a real cluster does once the pod ends.
- ConfigMaps (v1): GET, POST (409 AlreadyExists), PATCH (the feature-flag store).
- Pods: list, with an equality `labelSelector` only (`a=b,c=d`); the double makes pods
  for finished Jobs only.
- SelfSubjectAccessReviews: allowed unless the (verb, resource) pair is in `denied`.
- resourceVersion: one counter for all writes; a PATCH that names a resourceVersion
  other than the stored one gets 409 Conflict, as an update would.
- Patch content types: application/merge-patch+json (RFC 7386) and
  application/strategic-merge-patch+json, which is APPROXIMATED as a merge patch
  whose lists of objects with a `name` key are merged by name (as Kubernetes does for
  containers and env), unless the list holds the directive `{"$patch": "replace"}`,
  which replaces it with the list's other items; no other `$patch` or
  `$setElementOrder` directives, other lists are replaced. application/json-patch+json is answered 415, so a caller that sends an
  object under the client's default patch type is caught.
- Faults: `fail_next(status, times)` answers the next requests with that status;
  `delay` holds every answer that many seconds; `before_next_patch(change)` lands
  another writer's edit between a client's read and its write.

Not implemented: authentication (any bearer token is accepted), watches, list (but
for pods), set-based label selectors, field managers, server-side apply, defaulting, validation,
ReplicaSets and pods, and the /scale subresource (the target scales by patching
spec.replicas).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

OBJECT_PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$")
NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces/(?P<name>[^/]+)$")
ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
MERGE, STRATEGIC = "application/merge-patch+json", "application/strategic-merge-patch+json"
REPLACE = {"$patch": "replace"}
KINDS = {"deployments": "Deployment", "virtualservices": "VirtualService", "destinationrules": "DestinationRule",
         "httproutes": "HTTPRoute", "jobs": "Job", "pods": "Pod", "configmaps": "ConfigMap"}
JOB_FAILED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class KubeDouble:
    """The double's state and behaviour; `url` once started."""

    def __init__(self, namespaces: tuple[str, ...] = ("prod", "staging"), rollout_delay: float = 0.05):
        self.namespaces = set(namespaces)
        self.rollout_delay = rollout_delay
        self.stuck: set[str] = set()
        self.denied: set[tuple[str, str]] = set()
        self.delay = 0.0
        self.requests: list[tuple[str, str, str, Any]] = []
        """(method, path, content type, body) of every request, in order."""
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._faults: list[int] = []
        self._before_next_patch: list[Any] = []
        self._version = 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # --- test controls -------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([status] * times)

    def before_next_patch(self, change: Any) -> None:
        """Run `change()` just before the next PATCH is handled: another writer's edit
        landing between a client's read and its write."""
        with self._lock:
            self._before_next_patch.append(change)

    def recover(self, namespace: str, name: str) -> None:
        """The rollout of a `stuck` Deployment completes after all (its pods became ready)."""
        self.stuck.discard(name)
        self._roll_out(namespace, name)

    def put(self, obj: dict[str, Any]) -> None:
        """Store an object as if applied from a manifest (a Deployment as rolled out)."""
        plural = obj["kind"].lower() + "s"
        with self._lock:
            self._store(plural, obj["metadata"]["namespace"], copy.deepcopy(obj), created=True)
            if plural == "deployments":
                self._roll_out(obj["metadata"]["namespace"], obj["metadata"]["name"])

    def finish_job(self, namespace: str, name: str, *, succeeded: bool, message: str = "",
                   reason: tuple[str, str] = JOB_FAILED) -> None:
        """The Job controller's work once the Job's pod ended: the pod, terminated with
        exit code 0 or 1 and `message`, and the Job's Complete or Failed (`reason`) condition."""
        with self._lock:
            job = self._objects[("jobs", namespace, name)]
            container = job["spec"]["template"]["spec"]["containers"][0]
            terminated = {"exitCode": 0 if succeeded else 1, "reason": "Completed" if succeeded else "Error",
                          "message": message}
            self._store("pods", namespace, {
                "apiVersion": "v1", "metadata": {"name": f"{name}-x7k2p", "labels": {"job-name": name}},
                "status": {"phase": "Succeeded" if succeeded else "Failed", "containerStatuses": [
                    {"name": container["name"], "image": container["image"], "imageID": "", "ready": False,
                     "restartCount": 0, "state": {"terminated": terminated}}]},
            }, created=True)
            condition = {"type": "Complete", "status": "True"} if succeeded else {
                "type": "Failed", "status": "True", "reason": reason[0], "message": reason[1]}
            job["status"] = {"succeeded" if succeeded else "failed": 1, "conditions": [condition]}
            self._version += 1
            job["metadata"]["resourceVersion"] = str(self._version)

    def names(self, plural: str, namespace: str) -> list[str]:
        with self._lock:
            return sorted(name for kind, ns, name in self._objects if (kind, ns) == (plural, namespace))

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._objects.get((plural, namespace, name))
            return copy.deepcopy(found) if found else None

    def writes(self, plural: str) -> list[tuple[str, str, Any]]:
        """(method, path, body) of the writes to one kind of object."""
        return [(m, p, b) for m, p, _, b in self.requests if m != "GET" and f"/{plural}" in p]

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "worker", "user": {"token": "not-a-real-token"}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "worker"}}],
        }))
        return path

    # --- serving ---------------------------------------------------------------------------

    def start(self) -> KubeDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                double._serve(self)

            do_POST = do_PATCH = do_DELETE = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        path, _, query = handler.path.partition("?")
        content_type = handler.headers.get("Content-Type", "").split(";")[0]
        with self._lock:
            self.requests.append((handler.command, path, content_type, body))
            fault = self._faults.pop(0) if self._faults else None
        time.sleep(self.delay)
        try:
            if fault:
                raise ApiError(fault, "InternalError" if fault >= 500 else "Conflict", f"injected {fault}")
            code, answer = self._handle(handler.command, path, content_type, body, parse_qs(query))
        except ApiError as error:
            code, answer = error.code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "message": error.message, "reason": error.reason, "code": error.code}
        data = json.dumps(answer).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(self, method: str, path: str, content_type: str, body: Any,
                query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if path == ACCESS_REVIEW_PATH and method == "POST":
            return 201, self._review(body)
        if (found := NAMESPACE_PATH.match(path)) and method == "GET":
            if found["name"] not in self.namespaces:
                raise ApiError(404, "NotFound", f'namespaces "{found["name"]}" not found')
            return 200, {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": found["name"]}}
        found = OBJECT_PATH.match(path)
        if not found or found["plural"] not in KINDS:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
        plural, namespace, name = found["plural"], found["ns"], found["name"]
        with self._lock:
            if method == "POST" and name is None:
                return 201, self._create(plural, namespace, body)
            if method == "GET" and name is None and plural == "pods":
                return 200, self._list(plural, namespace, query.get("labelSelector", [""])[0])
            key = (plural, namespace, name)
            if key not in self._objects:
                raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
            if method == "GET":
                return 200, copy.deepcopy(self._objects[key])
            if method == "PATCH":
                while self._before_next_patch:
                    self._before_next_patch.pop(0)()
                return 200, self._patch(key, content_type, body)
            if method == "DELETE":
                del self._objects[key]
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        raise ApiError(405, "MethodNotAllowed", f"{method} {path}")

    # --- semantics -------------------------------------------------------------------------

    def _review(self, review: dict[str, Any]) -> dict[str, Any]:
        attributes = review["spec"]["resourceAttributes"]
        allowed = (attributes["verb"], attributes["resource"]) not in self.denied
        return {**review, "status": {"allowed": allowed}}

    def _create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if (plural, namespace, name) in self._objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        body = _without_nulls(body)
        body.pop("status", None)
        stored = self._store(plural, namespace, body, created=True)
        if plural == "deployments":
            self._schedule_rollout(namespace, name)
        if plural == "jobs":
            stored["status"] = {"active": 1}
        return copy.deepcopy(stored)

    def _list(self, plural: str, namespace: str, selector: str) -> dict[str, Any]:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = [copy.deepcopy(obj) for (kind, ns, _), obj in self._objects.items() if (kind, ns) == (plural, namespace)
                 and wanted.items() <= obj["metadata"].get("labels", {}).items()]
        return {"kind": f"{KINDS[plural]}List", "apiVersion": "v1", "metadata": {}, "items": items}

    def _patch(self, key: tuple[str, str, str], content_type: str, patch: dict[str, Any]) -> dict[str, Any]:
        if content_type not in (MERGE, STRATEGIC):
            raise ApiError(415, "UnsupportedMediaType", f"the double does not accept {content_type!r} patches")
        current = self._objects[key]
        wanted_version = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted_version and wanted_version != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified; please apply your changes to the latest version")
        patch = {k: v for k, v in patch.items() if k != "status"}
        merged = merge(current, patch, by_name=content_type == STRATEGIC)
        spec_changed = merged.get("spec") != current.get("spec")
        if merged == current:
            return copy.deepcopy(current)
        stored = self._store(key[0], key[1], merged, created=False, spec_changed=spec_changed)
        if key[0] == "deployments" and spec_changed:
            self._schedule_rollout(key[1], key[2])
        return copy.deepcopy(stored)

    def _store(self, plural: str, namespace: str, obj: dict[str, Any], *, created: bool,
               spec_changed: bool = True) -> dict[str, Any]:
        self._version += 1
        metadata = obj.setdefault("metadata", {})
        metadata.update(namespace=namespace, resourceVersion=str(self._version))
        obj.setdefault("kind", KINDS[plural])
        if plural == "deployments" and (created or spec_changed):
            metadata["generation"] = 1 if created else metadata.get("generation", 0) + 1
        self._objects[(plural, namespace, metadata["name"])] = obj
        return obj

    def _schedule_rollout(self, namespace: str, name: str) -> None:
        if name in self.stuck:
            self._show_stuck(namespace, name)
            return
        timer = threading.Timer(self.rollout_delay, self._roll_out, (namespace, name))
        timer.daemon = True
        timer.start()

    def _roll_out(self, namespace: str, name: str) -> None:
        """The controller's work: every replica updated and available."""
        with self._lock:
            deployment = self._objects.get(("deployments", namespace, name))
            if deployment is None:
                return
            replicas = deployment["spec"].get("replicas", 1)
            deployment["status"] = {
                "observedGeneration": deployment["metadata"]["generation"], "replicas": replicas,
                "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                               {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
            }
            self._version += 1
            deployment["metadata"]["resourceVersion"] = str(self._version)

    def _show_stuck(self, namespace: str, name: str) -> None:
        deployment = self._objects[("deployments", namespace, name)]
        replicas = deployment["spec"].get("replicas", 1)
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"], "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": 0, "availableReplicas": 0,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": f'ReplicaSet "{name}-6b9f" has timed out progressing.'},
            ],
        }


def merge(current: Any, patch: Any, *, by_name: bool) -> Any:
    """RFC 7386 merge patch; with `by_name`, lists of named objects merge by name, and a
    list that holds the directive REPLACE replaces the live one."""
    if isinstance(patch, list) and by_name and REPLACE in patch:
        return [_without_nulls(item) for item in patch if item != REPLACE]
    if isinstance(patch, list) and by_name and isinstance(current, list) and _named(patch) and _named(current):
        merged = {item["name"]: item for item in current}
        for item in patch:
            merged[item["name"]] = merge(merged.get(item["name"], {}), item, by_name=True)
        return list(merged.values())
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value, by_name=by_name)
    return result


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
