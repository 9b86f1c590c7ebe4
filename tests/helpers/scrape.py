"""Reading a Prometheus endpoint in tests: a scrape over real HTTP parsed with
prometheus_client's parser, waiting on a condition of it with a bound; the metric
names a PromQL expression (or a Grafana dashboard's queries) reads; and a real
Prometheus server (the `prometheus` binary) scraping one endpoint."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.local import free_port

Samples = dict[tuple[str, frozenset], float]


class Scraper:
    def __init__(self, address: str):
        self.address, self.url = address, f"http://{address}/metrics"

    async def scrape(self) -> Samples:
        async with httpx.AsyncClient() as client:
            response = await client.get(self.url, timeout=5)
        response.raise_for_status()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    async def value(self, name: str, **labels: str) -> float | None:
        return value_of(await self.scrape(), name, **labels)

    async def until(self, condition: Callable[[Samples], bool], within: float = 30) -> Samples:
        samples: Samples = {}
        try:
            async with asyncio.timeout(within):
                while not condition(samples := await self.scrape()):
                    await asyncio.sleep(0.2)
        except TimeoutError:
            pytest.fail(f"scrape condition not met within {within}s; release_ samples: {release_samples(samples)}")
        return samples


def value_of(samples: Samples, name: str, **labels: str) -> float | None:
    """The sum over every series of `name` whose labels include `labels` (None: no such series)."""
    found = [value for (sample, have), value in samples.items() if sample == name and set(labels.items()) <= have]
    return sum(found) if found else None


def release_samples(samples: Samples) -> list[str]:
    return sorted(f"{name}{dict(labels)}={value}" for (name, labels), value in samples.items() if name.startswith("release_"))


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def promql_metrics(expression: str) -> set[str]:
    """Metric names in a PromQL expression: label matchers, ranges, strings and
    dashboard variables removed, what remains is a function (followed by `(`), a
    keyword, a grouping's labels, or a metric."""
    text = re.sub(r'"[^"]*"', "", expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text)
    return {name for name in names if name not in PROMQL_WORDS and not re.fullmatch(r"[0-9.e+-]+", name)}


def dashboard_expressions(dashboard: dict) -> list[str]:
    """Every panel's query, and the metric each query variable reads its values from."""
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    variables = [variable["query"]["query"] for variable in dashboard["templating"]["list"] if variable["type"] == "query"]
    return expressions + [re.sub(r"label_values\((\w+),\s*\w+\)", r"\1", variable) for variable in variables]


def dashboard_metrics(dashboard: dict) -> set[str]:
    return set().union(*(promql_metrics(expression) for expression in dashboard_expressions(dashboard)))


GRAFANA_VARIABLES = {"$service": ".*", "$__rate_interval": "1m", "$__range": "1h"}


def as_prometheus_runs_it(expression: str) -> str:
    """A dashboard query with Grafana's variables given values, as Grafana sends it."""
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


class PrometheusServer:
    """The real `prometheus` binary scraping one endpoint every second, with rule files."""

    def __init__(self, home: Path, target: str, rule_files: list[Path]):
        self.home, self.target, self.rule_files = home, target, rule_files
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> PrometheusServer:
        config = self.home / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [{"job_name": "release-worker", "static_configs": [{"targets": [self.target]}]}],
        }))
        self.process = await asyncio.create_subprocess_exec(
            "prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address={self.url.removeprefix('http://')}",
            stdout=asyncio.subprocess.DEVNULL, stderr=(self.home / "prometheus.log").open("wb"),
        )
        await self.until('up{job="release-worker"} == 1')
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.process.terminate()
        await asyncio.wait_for(self.process.wait(), 30)

    async def api(self, path: str, **params: str) -> dict:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            response = await client.get(f"/api/v1/{path}", params=params)
            response.raise_for_status()
            return response.json()

    async def until(self, query: str, within: float = 30) -> list[dict]:
        """Wait until `query` has a result; returns it. Prometheus may not be
        listening yet, or may answer 503 until its storage is ready."""
        try:
            async with asyncio.timeout(within):
                while True:
                    try:
                        answer = await self.api("query", query=query)
                        if answer.get("status") == "success" and answer["data"]["result"]:
                            return answer["data"]["result"]
                    except (httpx.TransportError, httpx.HTTPStatusError):
                        pass
                    await asyncio.sleep(0.2)
        except TimeoutError:
            pytest.fail(f"no result for {query} within {within}s; see {self.home / 'prometheus.log'}")
