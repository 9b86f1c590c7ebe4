"""The sample gallery's Prometheus metrics, and how a local Prometheus finds them.

On the local target there is no service discovery: each process registers itself in
GALLERY_SCRAPE_DIR, one file_sd JSON file per instance (its address, service, version
and instance id), which the local Prometheus watches (pipeline/local/prometheus.py),
and removes it when it stops. A process killed outright leaves its file behind; that
target is then down and yields no series, and the next process given the same port
removes it, so one process is never scraped twice under two names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

SCRAPE_DIR_VARIABLE = "GALLERY_SCRAPE_DIR"
SERVICE_VARIABLE = "GALLERY_SERVICE"
DEFAULT_SERVICE = "gallery"


def metrics_page(registry: CollectorRegistry) -> tuple[str, bytes]:
    """The Prometheus text exposition of `registry`: content type and body."""
    return CONTENT_TYPE_LATEST, generate_latest(registry)


def scrape_target(environ: Mapping[str, str], port: int, version: str, instance_id: str) -> list[dict]:
    """The file_sd entry of one process."""
    labels = {"service": environ.get(SERVICE_VARIABLE) or DEFAULT_SERVICE, "version": version, "instance_id": instance_id}
    return [{"targets": [f"127.0.0.1:{port}"], "labels": labels}]


def register_for_scraping(environ: Mapping[str, str], port: int, version: str, instance_id: str) -> Callable[[], None]:
    """Write this process's file_sd file (none without GALLERY_SCRAPE_DIR); returns
    what removes it."""
    folder = environ.get(SCRAPE_DIR_VARIABLE)
    if not folder:
        return lambda: None
    directory = Path(folder)
    directory.mkdir(parents=True, exist_ok=True)
    entry = scrape_target(environ, port, version, instance_id)
    for stale in directory.glob("*.json"):
        if _targets_of(stale) & set(entry[0]["targets"]):
            stale.unlink(missing_ok=True)
    path = directory / f"{instance_id}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(entry))
    os.replace(temporary, path)
    return lambda: path.unlink(missing_ok=True)


def _targets_of(path: Path) -> set[str]:
    try:
        return {target for group in json.loads(path.read_text()) for target in group.get("targets", [])}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()
