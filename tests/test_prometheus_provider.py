"""The Prometheus provider without a Prometheus: templates, result parsing, settings,
and a server that is down or slow, which is never read as healthy."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.errors import MetricsUnavailable
from pipeline.metrics import provider_for
from pipeline.metrics.prometheus import (
    DEFAULT_QUERIES,
    MetricsQuery,
    PrometheusMetrics,
    PrometheusSettings,
    finite_samples,
    render,
    single_value,
)
from pipeline.models import Metric, ObserveRequest, ReleasePolicy, ServiceRef
from tests.helpers.local import free_port

TOKEN = "s3cr3t-token"


def test_placeholders_are_filled_and_promql_braces_kept():
    query = render(DEFAULT_QUERIES[Metric.ERROR_RATE], {"service": "gallery", "track": "canary", "window": "30s"})
    assert 'service="gallery-canary@file",code=~"5.."}[30s]' in query and "{service}" not in query


def test_policy_queries_override_defaults_and_take_a_requests_query():
    policy = ReleasePolicy.model_validate({"metrics_provider": "prometheus", "queries": {"requests": "sum(x)", "error_rate": "sum(y)"}})
    query = MetricsQuery(metrics=[Metric.ERROR_RATE], queries=policy.queries)
    assert query.template("requests") == "sum(x)" and query.template(Metric.ERROR_RATE) == "sum(y)"
    assert query.template(Metric.P95_LATENCY_MS) == DEFAULT_QUERIES[Metric.P95_LATENCY_MS]


@pytest.mark.parametrize(
    ("result", "value", "why"),
    [
        ([], None, "no samples"),
        ([{"value": [1, "NaN"]}], None, "NaN"),
        ([{"value": [1, "+Inf"]}], None, "Inf"),
        ([{"value": [1, "1"]}, {"value": [1, "2"]}], None, "2 series"),
        ([{"value": [1, "0.25"]}], 0.25, None),
    ],
)
def test_an_instant_result_is_one_finite_value_or_a_reason(result, value, why):
    got, reason = single_value(result)
    assert got == value and (why is None) == (reason is None) and (why is None or why in reason)


def test_range_samples_drop_non_finite_values():
    assert finite_samples([{"values": [[1, "1"], [2, "NaN"], [3, "2"]]}]) == [1.0, 2.0]


def test_settings_come_from_the_environment_and_hide_the_token():
    settings = PrometheusSettings.from_env(
        {"PIPELINE_PROMETHEUS_URL": "https://user:pw@prom.example:9443/", "PIPELINE_PROMETHEUS_TOKEN": TOKEN}
    )
    assert settings.token == TOKEN and TOKEN not in repr(settings)
    assert settings.where == "https://prom.example:9443"


def test_the_release_policy_selects_the_provider():
    request = ObserveRequest(ref=ServiceRef(release_id="r", service="gallery"), provider="prometheus", metrics=[Metric.ERROR_RATE])
    assert isinstance(provider_for(request), PrometheusMetrics)


class FakePrometheus(BaseHTTPRequestHandler):
    delay = 0.0
    seen_authorization: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        FakePrometheus.seen_authorization.append(self.headers.get("Authorization", ""))
        time.sleep(self.delay)
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.5"]}]}})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def provider(url: str, **settings) -> PrometheusMetrics:
    return PrometheusMetrics(MetricsQuery(metrics=[Metric.ERROR_RATE]), PrometheusSettings(url=url, **settings))


async def test_the_token_is_sent_as_a_bearer_header(fake_prometheus):
    FakePrometheus.delay, FakePrometheus.seen_authorization = 0.0, []
    observation = await provider(fake_prometheus, token=TOKEN).observe("gallery", {"taken_at": time.time() - 10})
    assert observation.canary.values[Metric.ERROR_RATE] == 0.5 and observation.canary.requests == 0
    assert set(FakePrometheus.seen_authorization) == {f"Bearer {TOKEN}"}


async def test_a_slow_prometheus_is_unavailable_not_healthy(fake_prometheus):
    FakePrometheus.delay = 1.0
    with pytest.raises(MetricsUnavailable) as unavailable:
        await provider(fake_prometheus, token=TOKEN, timeout_seconds=0.2).observe("gallery", {"taken_at": time.time() - 10})
    assert TOKEN not in str(unavailable.value)


async def test_a_prometheus_that_is_down_is_unavailable():
    with pytest.raises(MetricsUnavailable, match="cannot query Prometheus"):
        await provider(f"http://127.0.0.1:{free_port()}").observe("gallery", {"taken_at": time.time() - 10})


async def test_the_first_read_only_opens_the_window():
    observation = await provider("http://127.0.0.1:1").observe("gallery", {})
    assert observation.canary.requests == 0 and not math.isnan(observation.cursor["taken_at"])
