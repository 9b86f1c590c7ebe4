"""Traffic routing through Traefik's file provider.

Each service has one dynamic-config file in the watched directory, holding:

- services `<svc>-stable` and `<svc>-canary`, one server each, and `<svc>-weighted`,
  which splits between them (a child with weight 0 is left out; Traefik 3.7 would
  accept weight 0 and send it nothing, but leaving it out keeps the file honest);
- router `<svc>` for Host(`<svc>.localhost`) to the weighted service, and, while
  segments go to the canary, the higher-priority router `<svc>-segments` that sends
  requests whose segment header names a canary segment to `<svc>-canary`.

Metrics are keyed on the child services, whose names stay when promote() moves a
process from canary to stable.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pipeline.errors import PermanentTargetError, TargetError
from pipeline.http import http_client
from pipeline.local.env import WEB_ENTRYPOINT, LocalEnvironment, find_traefik, write_atomically
from pipeline.routers.base import Split, matches

SEGMENT_VALUE = re.compile(r"^[A-Za-z0-9._ -]+$")
CONFIRM_TIMEOUT_SECONDS = 10.0


def stable_service(service: str) -> str:
    return f"{service}-stable"


def canary_service(service: str) -> str:
    return f"{service}-canary"


def routing_config(service: str, split: Split) -> dict[str, Any]:
    """The dynamic configuration that routes `service` as `split` says."""
    stable, canary, weighted = stable_service(service), canary_service(service), f"{service}-weighted"
    host_rule = f"Host(`{service}.localhost`)"
    services = {name: _load_balancer(url) for name, url in ((stable, split.stable_url), (canary, split.canary_url)) if url}
    shares = ((stable, 100 - split.canary_weight), (canary, split.canary_weight))
    children = [{"name": name, "weight": weight} for name, weight in shares if name in services and weight > 0]
    routers = {}
    if children:
        services[weighted] = {"weighted": {"services": children}}
        routers[service] = _router(host_rule, weighted, priority=1)
    if split.routes_segments and split.canary_url:
        routers[f"{service}-segments"] = _router(
            f"{host_rule} && {_segment_rule(split.segment_header, split.canary_segments)}", canary, priority=2
        )
    return {"http": {"routers": routers, "services": services}}


def _load_balancer(url: str) -> dict[str, Any]:
    return {"loadBalancer": {"servers": [{"url": url}]}}


def _router(rule: str, service: str, priority: int) -> dict[str, Any]:
    return {"rule": rule, "service": service, "entryPoints": [WEB_ENTRYPOINT], "priority": priority}


def _segment_rule(header: str, segments: tuple[str, ...]) -> str:
    unsafe = [segment for segment in segments if not SEGMENT_VALUE.match(segment)]
    if unsafe:
        raise PermanentTargetError(f"segment values {unsafe} may only use letters, digits, '.', '_', '-', ' '")
    return f"HeaderRegexp(`{header}`, `^({'|'.join(re.escape(s) for s in segments)})$`)"


class TraefikRouter:
    def __init__(self, env: LocalEnvironment, confirm_timeout_seconds: float = CONFIRM_TIMEOUT_SECONDS):
        self._env = env
        self._confirm_timeout_seconds = confirm_timeout_seconds

    async def check(self, service: str) -> None:
        find_traefik()

    async def apply(self, service: str, split: Split) -> bool:
        await self._env.ensure_router_running()
        desired = routing_config(service, split)
        path = self._env.dynamic_dir / f"{service}.yaml"
        current = _read_config(path)
        changed = current != desired
        if changed:
            write_atomically(path, json.dumps(desired, indent=2))
        # Confirmed even when unchanged: a retry may follow a crash right after the write.
        await self._confirm_live(desired, previous=current)
        if changed:
            self._record_change(service, split)
        return changed

    async def _confirm_live(self, desired: dict[str, Any], previous: dict[str, Any]) -> None:
        """Wait until Traefik's API shows every desired router and service and none of
        the previous ones that are no longer desired."""
        wanted = {**dict.fromkeys(_keys(previous)), **_keys(desired)}
        deadline = time.monotonic() + self._confirm_timeout_seconds
        async with http_client(base_url=f"{self._env.admin_url}/api/http/", timeout=2) as api:
            while True:
                answers = await asyncio.gather(*(_why_not_live(api, k, spec) for k, spec in wanted.items()))
                pending = [answer for answer in answers if answer]
                if not pending:
                    return
                if time.monotonic() > deadline:
                    raise TargetError(
                        f"Traefik did not serve the new routing within {self._confirm_timeout_seconds:g}s: "
                        + "; ".join(pending)
                    )
                await asyncio.sleep(0.05)

    def _record_change(self, service: str, split: Split) -> None:
        """Append the change to the local environment's traffic log (what the demo
        and the tests read back)."""
        change = {
            "service": service,
            "canary_weight": split.canary_weight,
            "segments_to_canary": split.segments_to_canary,
            "stable_url": split.stable_url,
            "canary_url": split.canary_url,
            "timestamp": datetime.now(UTC).isoformat(),
        }
        with self._env.traffic_log.open("a") as change_log:
            change_log.write(json.dumps(change) + "\n")


async def _why_not_live(api: httpx.AsyncClient, key: str, spec: dict[str, Any] | None) -> str | None:
    """Why the API does not show `key` as `spec` says (None: as absent), or None when it does."""
    try:
        response = await api.get(f"{key}@file")
    except httpx.HTTPError as error:
        return f"{key}: API unreachable ({error!r})"
    if spec is None:
        return None if response.status_code == 404 else f"{key}@file still present"
    live = response.json() if response.status_code == 200 else {}
    if not matches(spec, live):
        return f"{key}@file not shown as written"
    if live.get("status") != "enabled":
        return f"{key}@file is {live.get('status')}: {live.get('error')}"
    return None


def _keys(config: dict[str, Any]) -> dict[str, Any]:
    """API paths ("routers/<name>", "services/<name>") of a dynamic config's entries."""
    return {f"{kind}/{name}": spec for kind, items in config.get("http", {}).items() for name, spec in items.items()}


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
