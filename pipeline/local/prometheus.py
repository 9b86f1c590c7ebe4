"""A Prometheus server for the local target, when a `prometheus` binary is on PATH.

It scrapes Traefik's admin /metrics every second, so the PromQL path
(`policy.metrics_provider: "prometheus"`) works on one machine exactly as against a
cluster's Prometheus; and the service processes' own /metrics (requests per feature
flag variant, pipeline/gallery/flags.py), found through the file_sd files each process
writes into scrape_targets_dir (pipeline/gallery/scrape.py). Detached and marked like Traefik (see pipeline.local.env), its
state (config, TSDB, pid, log) lives in the environment's state directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline.errors import LocalEnvironmentError
from pipeline.http import http_client
from pipeline.local.env import LocalEnvironment, launch_detached, terminate, write_atomically

SCRAPE_INTERVAL = "1s"
SERVICES_JOB = "services"
START_TIMEOUT_SECONDS = 30.0


def find_prometheus() -> str | None:
    return shutil.which("prometheus")


def scrape_targets_dir(state_dir: Path) -> Path:
    """Where the local target's service processes register themselves for scraping."""
    return state_dir / "prometheus" / "targets"


@dataclass(frozen=True)
class LocalPrometheus:
    local: LocalEnvironment
    port: int = 9090

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return self.local.state_dir / "prometheus"

    @property
    def config(self) -> Path:
        return self.home / "prometheus.yml"

    @property
    def _marker(self) -> str:
        return f"--config.file={self.config}"

    def scrape_config(self) -> dict:
        """Prometheus reads YAML, and JSON is YAML."""
        return {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": [
                {
                    "job_name": "traefik",
                    "scrape_interval": SCRAPE_INTERVAL,
                    "static_configs": [{"targets": [f"127.0.0.1:{self.local.admin_port}"]}],
                },
                {
                    "job_name": SERVICES_JOB,
                    "scrape_interval": SCRAPE_INTERVAL,
                    "file_sd_configs": [{
                        "files": [str(scrape_targets_dir(self.local.state_dir) / "*.json")],
                        "refresh_interval": SCRAPE_INTERVAL,
                    }],
                },
            ],
        }

    async def start(self) -> None:
        binary = find_prometheus()
        if binary is None:
            raise LocalEnvironmentError("no prometheus binary on PATH (apt-get install -y prometheus)")
        await self.stop()
        write_atomically(self.config, json.dumps(self.scrape_config(), indent=2))
        argv = [
            binary,
            self._marker,
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
        ]
        pid = await launch_detached(argv, dict(os.environ), self.local.logs_dir / "prometheus.log")
        write_atomically(self.home / "prometheus.pid", str(pid))
        await self._wait_until_scraping()

    async def stop(self) -> None:
        pid_file = self.home / "prometheus.pid"
        if pid_file.exists():
            await terminate(int(pid_file.read_text()), self._marker)
            pid_file.unlink(missing_ok=True)

    async def _wait_until_scraping(self) -> None:
        """Ready, and Traefik's target up: before that every query has no data."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        async with http_client(base_url=self.url, timeout=1) as client:
            while time.monotonic() < deadline:
                try:
                    response = await client.get("/api/v1/query", params={"query": 'up{job="traefik"}'})
                    if response.status_code == 200 and any(r["value"][1] == "1" for r in response.json()["data"]["result"]):
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise LocalEnvironmentError(f"prometheus did not scrape Traefik within {START_TIMEOUT_SECONDS}s; see {self.local.logs_dir / 'prometheus.log'}")
