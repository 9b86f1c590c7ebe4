"""Canary and stable metrics read from a Prometheus server with PromQL.

Every metric is a PromQL template; the release's policy may override any of them
(`policy.queries`). Placeholders: {service}, {track} (canary | stable), {version}
(that track's version), {namespace} and {window} (a Prometheus duration such as
`60s`, the time since the previous analysis). A template must return one series;
no series, NaN or Inf is reported as missing with the reason, never as a value.

A feature-flag analysis (`ObserveRequest.flag`) compares users instead of versions:
canary is the requests the service served with the flag's on variant, stable those
with its off variant, from the service's own metrics (pipeline/gallery/flags.py) with
FLAG_QUERIES; their templates also know {flag} and {variant} (that track's variant).

Connection settings come from the worker's environment, never from the release
request, so a bearer token is neither in workflow history nor in any log line:
  PIPELINE_PROMETHEUS_URL               (default http://127.0.0.1:9090)
  PIPELINE_PROMETHEUS_TOKEN             bearer token, optional
  PIPELINE_PROMETHEUS_CA_BUNDLE         CA file for https, optional
  PIPELINE_PROMETHEUS_INSECURE_SKIP_VERIFY=1   no TLS verification (tests only)
  PIPELINE_PROMETHEUS_TIMEOUT_SECONDS   per query (default 5)
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from pipeline.errors import MetricsUnavailable
from pipeline.models import Metric, Observation, ObserveRequest, QueryName, VersionMetrics
from pipeline.models.flags import FlagComparison

log = structlog.get_logger()

REQUESTS: QueryName = "requests"
"""Query name of the request count over the window, which `min_requests` is checked against."""

_TRAEFIK = 'service="{service}-{track}@file"'
_APP = 'service="{service}",track="{track}",namespace="{namespace}"'


def request_queries(counter: str, histogram: str, selector: str) -> dict[QueryName, str]:
    """The request count, error rate, p95 latency and availability of the requests a
    counter (with a `code` label) and a latency histogram count under `selector`."""
    return {
        REQUESTS: f"sum(increase({counter}{{{selector}}}[{{window}}]))",
        Metric.ERROR_RATE: (
            f'(sum(rate({counter}{{{selector},code=~"5.."}}[{{window}}])) or vector(0))'
            f" / sum(rate({counter}{{{selector}}}[{{window}}]))"
        ),
        Metric.P95_LATENCY_MS: (
            f"histogram_quantile(0.95, sum by (le) (rate({histogram}{{{selector}}}[{{window}}]))) * 1000"
        ),
        Metric.GALLERY_AVAILABILITY: (
            f'(sum(rate({counter}{{{selector},code!~"5.."}}[{{window}}])) or vector(0))'
            f" / sum(rate({counter}{{{selector}}}[{{window}}]))"
        ),
    }


DEFAULT_QUERIES: dict[QueryName, str] = {
    **request_queries("traefik_service_requests_total", "traefik_service_request_duration_seconds_bucket", _TRAEFIK),
    # Application metrics: the sample services do not export them, so locally they
    # report no data (inconclusive when a required rule names them).
    Metric.UPLOAD_FAILURE_RATE: (
        f"sum(rate(gallery_upload_failures_total{{{_APP}}}[{{window}}])) / sum(rate(gallery_uploads_total{{{_APP}}}[{{window}}]))"
    ),
    Metric.IMAGE_PROCESSING_P95_MS: (
        f"histogram_quantile(0.95, sum by (le) (rate(gallery_image_processing_seconds_bucket{{{_APP}}}[{{window}}]))) * 1000"
    ),
    Metric.THUMBNAIL_SUCCESS_RATE: (
        f"sum(rate(gallery_thumbnails_succeeded_total{{{_APP}}}[{{window}}])) / sum(rate(gallery_thumbnails_total{{{_APP}}}[{{window}}]))"
    ),
    Metric.FILE_CORRUPTION_RATE: (
        f"sum(rate(gallery_files_corrupted_total{{{_APP}}}[{{window}}])) / sum(rate(gallery_files_written_total{{{_APP}}}[{{window}}]))"
    ),
    Metric.SHOOT_COMPLETION_RATE: (
        f"sum(rate(gallery_shoots_completed_total{{{_APP}}}[{{window}}])) / sum(rate(gallery_shoots_started_total{{{_APP}}}[{{window}}]))"
    ),
    Metric.GALLERY_LOAD_TIME_MS: (
        f"histogram_quantile(0.95, sum by (le) (rate(gallery_load_seconds_bucket{{{_APP}}}[{{window}}]))) * 1000"
    ),
    Metric.PROCESSING_TIME_MS: (
        f"histogram_quantile(0.5, sum by (le) (rate(gallery_processing_seconds_bucket{{{_APP}}}[{{window}}]))) * 1000"
    ),
    Metric.REVENUE_PROXY: f"sum(rate(gallery_orders_value_total{{{_APP}}}[{{window}}]))",
}
_FLAG = 'service="{service}",flag="{flag}",variant="{variant}"'
FLAG_QUERIES = request_queries("gallery_flag_requests_total", "gallery_flag_request_duration_seconds_bucket", _FLAG)
"""The service's requests per flag variant (labels from its scrape target: service)."""
TRACKS = ("canary", "stable")


def render(template: str, placeholders: Mapping[str, str]) -> str:
    """Fill the known placeholders only; PromQL's own braces are left alone."""
    for name, value in placeholders.items():
        template = template.replace("{" + name + "}", value)
    return template


def single_value(result: list[dict[str, Any]]) -> tuple[float | None, str | None]:
    """The value of an instant query's one series, or None and why there is none."""
    if not result:
        return None, "no samples"
    if len(result) > 1:
        return None, f"query returned {len(result)} series; aggregate it to one"
    value = float(result[0]["value"][1])
    if math.isnan(value):
        return None, "NaN (no traffic in the window?)"
    if math.isinf(value):
        return None, "Inf"
    return value, None


def finite_samples(result: list[dict[str, Any]]) -> list[float]:
    """The finite values of a range query's one series (several series: none)."""
    if len(result) != 1:
        return []
    return [v for v in (float(value) for _, value in result[0]["values"]) if math.isfinite(v)]


@dataclass(frozen=True)
class PrometheusSettings:
    url: str = "http://127.0.0.1:9090"
    token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    verify: bool = True
    timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> PrometheusSettings:
        return cls(
            url=environ.get("PIPELINE_PROMETHEUS_URL", cls.url).rstrip("/"),
            token=environ.get("PIPELINE_PROMETHEUS_TOKEN") or None,
            ca_bundle=environ.get("PIPELINE_PROMETHEUS_CA_BUNDLE") or None,
            verify=environ.get("PIPELINE_PROMETHEUS_INSECURE_SKIP_VERIFY", "") not in ("1", "true"),
            timeout_seconds=float(environ.get("PIPELINE_PROMETHEUS_TIMEOUT_SECONDS", cls.timeout_seconds)),
        )

    def connect(self) -> PrometheusConnect:
        """A client that does not retry on its own: the activity retries, with backoff
        that Temporal records, so a slow Prometheus cannot stall one attempt."""
        session = requests.Session()
        session.verify = self.ca_bundle or self.verify
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        return PrometheusConnect(
            url=self.url, headers=headers, session=session, timeout=self.timeout_seconds, retry=Retry(total=0)
        )

    @property
    def where(self) -> str:
        """The server for messages: scheme, host and port, never credentials."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


@dataclass(frozen=True)
class MetricsQuery:
    """What one release asks Prometheus for (from its policy, via ObserveRequest)."""

    metrics: list[Metric]
    queries: Mapping[QueryName, str] = field(default_factory=dict)
    sampled: list[Metric] = field(default_factory=list)
    sample_seconds: int = 5
    namespace: str = "default"
    versions: Mapping[str, str | None] = field(default_factory=dict)
    flag: FlagComparison | None = None

    def template(self, name: QueryName) -> str | None:
        return self.queries.get(name) or (FLAG_QUERIES if self.flag else DEFAULT_QUERIES).get(name)

    def placeholders(self, service: str, track: str, window: str) -> dict[str, str]:
        flag = {"flag": self.flag.flag, "variant": self.variant(track)} if self.flag else {}
        return {
            "service": service,
            "track": track,
            "version": self.versions.get(track) or "",
            "namespace": self.namespace,
            "window": window,
            **flag,
        }

    def variant(self, track: str) -> str:
        """A flag analysis's variant for a track: canary the on variant, stable the off one."""
        return self.flag.on_variant if track == "canary" else self.flag.off_variant


class PrometheusMetrics:
    """The cursor is the time of the previous read; each observe() queries the window
    since then (the first call only opens the window, like the Traefik provider)."""

    def __init__(self, query: MetricsQuery, settings: PrometheusSettings | None = None):
        self._query = query
        self._settings = settings or PrometheusSettings.from_env()

    @classmethod
    def for_request(cls, request: ObserveRequest) -> PrometheusMetrics:
        """The provider for a release (pipeline/catalog.py), with the worker's settings."""
        return cls(MetricsQuery(
            metrics=request.metrics,
            queries=request.queries,
            sampled=request.sampled,
            sample_seconds=request.sample_seconds,
            namespace=request.namespace,
            versions={"canary": request.canary_version, "stable": request.stable_version},
            flag=request.flag,
        ))

    async def observe(self, service: str, cursor: dict[str, Any]) -> Observation:
        now = time.time()
        taken_at = cursor.get("taken_at")
        if taken_at is None:
            return Observation(window_seconds=0, canary=VersionMetrics(), stable=VersionMetrics(), cursor={"taken_at": now})
        tracks = await asyncio.to_thread(self._read_tracks, service, taken_at, now)
        observation = Observation(window_seconds=round(now - taken_at, 3), cursor={"taken_at": now}, **tracks)
        log.info("metrics.observed", provider="prometheus", server=self._settings.where, service=service,
                 flag=self._query.flag.flag if self._query.flag else None,
                 window_seconds=observation.window_seconds, canary_requests=observation.canary.requests,
                 stable_requests=observation.stable.requests, canary_missing=observation.canary.missing)
        return observation

    def _read_tracks(self, service: str, start: float, end: float) -> dict[str, VersionMetrics]:
        client = self._settings.connect()
        try:
            return {track: self._read_track(client, service, track, start, end) for track in TRACKS}
        except (requests.RequestException, PrometheusApiClientException, ValueError, KeyError) as error:
            raise MetricsUnavailable(f"cannot query Prometheus at {self._settings.where}: {type(error).__name__}: {error}") from None
        finally:
            client.close()

    def _read_track(self, client: PrometheusConnect, service: str, track: str, start: float, end: float) -> VersionMetrics:
        window = f"{max(1, math.ceil(end - start))}s"
        placeholders = self._query.placeholders(service, track, window)
        at = {"time": f"{end:.3f}"}
        requests_value, _ = single_value(client.custom_query(render(self._query.template(REQUESTS), placeholders), params=at))
        values, missing = {}, {}
        for metric in self._query.metrics:
            template = self._query.template(metric)
            value, why = (None, "no query for this metric") if template is None else single_value(
                client.custom_query(render(template, placeholders), params=at)
            )
            values[metric] = value
            if why:
                missing[metric] = why
        return VersionMetrics(
            requests=round(requests_value or 0),
            values=values,
            missing=missing,
            samples=self._samples(client, service, track, start, end),
        )

    def _samples(self, client: PrometheusConnect, service: str, track: str, start: float, end: float) -> dict[Metric, list[float]]:
        """Each sampled metric over the window at `sample_seconds` resolution, for the
        baseline comparison."""
        step = self._query.sample_seconds
        placeholders = self._query.placeholders(service, track, f"{step}s")
        begin, finish = (datetime.fromtimestamp(t, timezone.utc) for t in (start, end))
        return {
            metric: finite_samples(client.custom_query_range(render(self._query.template(metric), placeholders), begin, finish, f"{step}s"))
            for metric in self._query.sampled
            if self._query.template(metric)
        }
