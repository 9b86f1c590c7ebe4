"""The simulated service: how one version answers requests at a given age, and how a
window of requests is spread over the versions by the routing. Pure functions of
their arguments (no clock, no I/O), so a window drawn twice from the same seed gives
the same requests.

A version's faults come from its release's env, with the sample gallery's knobs so
that a request written for the local target fails the same way here:
  GALLERY_ERROR_RATE            share of requests answered 5xx (0..1)
  GALLERY_LATENCY_MS            added to every request
  GALLERY_READY_DELAY_SECONDS   readiness fails until then
  GALLERY_FAULTS_AFTER_SECONDS  the two faults above start that long after the version
                                did (a slow degradation that passes the canary)
and knobs of the sim's own:
  SIM_LATENCY_MEDIAN_MS, SIM_LATENCY_SIGMA  the healthy latency distribution: lognormal
                                            with that median and shape
  SIM_CRASH_AFTER_SECONDS       the version crashes then: every later request fails
                                and its health check too
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import NamedTuple, Self

MAX_REQUESTS_PER_WINDOW = 20_000
"""A long window (hours of skipped time waiting for an approval) is drawn with this many
requests at most, spread over the whole window, so one analysis stays milliseconds."""


@dataclass(frozen=True)
class Faults:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    ready_delay_seconds: float = 0.0
    faults_after_seconds: float = 0.0
    latency_median_ms: float = 40.0
    latency_sigma: float = 0.3
    crash_after_seconds: float | None = None

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Self:
        """The faults a release's env asks for; a knob that is not a number is a
        ValueError naming it."""
        knobs = {name: _number(env, variable) for name, variable in ENV_KNOBS.items() if env.get(variable)}
        return cls().with_changes(**knobs)

    def with_changes(self, **changes: float) -> Self:
        """These faults with `changes`, clamped: a rate to 0..1, every duration to >= 0."""
        clamped = {name: max(float(value), 0.0) for name, value in changes.items() if value is not None}
        if "error_rate" in clamped:
            clamped["error_rate"] = min(clamped["error_rate"], 1.0)
        return replace(self, **clamped)

    def crashed_at(self, age_seconds: float) -> bool:
        return self.crash_after_seconds is not None and age_seconds >= self.crash_after_seconds

    def ready_at(self, age_seconds: float) -> bool:
        return age_seconds >= self.ready_delay_seconds and not self.crashed_at(age_seconds)


ENV_KNOBS = {
    "error_rate": "GALLERY_ERROR_RATE",
    "latency_ms": "GALLERY_LATENCY_MS",
    "ready_delay_seconds": "GALLERY_READY_DELAY_SECONDS",
    "faults_after_seconds": "GALLERY_FAULTS_AFTER_SECONDS",
    "latency_median_ms": "SIM_LATENCY_MEDIAN_MS",
    "latency_sigma": "SIM_LATENCY_SIGMA",
    "crash_after_seconds": "SIM_CRASH_AFTER_SECONDS",
}
"""Faults field -> the env variable that sets it."""
FAULT_FIELDS = frozenset(field.name for field in fields(Faults))


@dataclass(frozen=True)
class RunningVersion:
    """A version in a slot: its faults, and when it started (release-clock seconds)."""

    version: str
    faults: Faults
    started_at: float


@dataclass(frozen=True)
class Routing:
    canary_weight: int = 0
    segments_to_canary: bool = False


@dataclass(frozen=True)
class Traffic:
    """The service's load: requests per second over both versions, and the share of
    them sent by the canary segments (which all go to the canary while segments route)."""

    requests_per_second: float = 10.0
    segment_share: float = 0.1


class Served(NamedTuple):
    """One request's outcome (a tuple: a default-policy simulation draws 70,000)."""

    at: float
    failed: bool
    latency_ms: float


def answerer(version: RunningVersion, rng: random.Random) -> Callable[[float], Served]:
    """How `version` answers a request at release-clock time `at`, drawing from `rng`.
    What does not change from one request to the next is looked up once: a
    default-policy simulation draws 70,000 requests, and per-request lookups and calls
    were a tenth of its run."""
    faults, started_at = version.faults, version.started_at
    crash_after, faults_after = faults.crash_after_seconds, faults.faults_after_seconds
    log_median, sigma = math.log(faults.latency_median_ms or 1e-3), faults.latency_sigma
    error_rate, added_ms = faults.error_rate, faults.latency_ms
    gauss, draw, exp = rng.gauss, rng.random, math.exp

    def answer(at: float) -> Served:
        age = at - started_at
        if crash_after is not None and age >= crash_after:
            return Served(at, True, 0.0)
        latency = exp(gauss(log_median, sigma))
        if age >= faults_after:
            return Served(at, draw() < error_rate, latency + added_ms)
        return Served(at, False, latency)

    return answer


def serve_window(
    seed: str,
    start: float,
    end: float,
    routing: Routing,
    traffic: Traffic,
    stable: RunningVersion | None,
    canary: RunningVersion | None,
) -> dict[str, list[Served]]:
    """The requests of [start, end), evenly spaced, each routed by `routing` and answered
    by the version it reaches: {"canary": [...], "stable": [...]}. `seed` names the
    draw (the caller folds in the service and the window), so it is reproducible.

    Routing: a request from the canary segments (`traffic.segment_share` of them) goes
    to the canary while segments route to it; any other goes there with the canary's
    weight. Without a canary every request goes to stable."""
    served: dict[str, list[Served]] = {"canary": [], "stable": []}
    count = min(int(traffic.requests_per_second * max(end - start, 0.0)), MAX_REQUESTS_PER_WINDOW)
    rng = random.Random(f"{seed}|{start!r}|{end!r}")
    draw, span = rng.random, end - start
    segment_share, segments_to_canary, weight = traffic.segment_share, routing.segments_to_canary, routing.canary_weight
    to_canary, to_stable = served["canary"].append, served["stable"].append
    answer_canary = answerer(canary, rng) if canary else None
    answer_stable = answerer(stable, rng) if stable else None
    for index in range(count):
        at = start + span * (index + 0.5) / count
        if answer_canary and ((draw() < segment_share and segments_to_canary) or draw() * 100 < weight):
            to_canary(answer_canary(at))
        elif answer_stable:
            to_stable(answer_stable(at))
    return served


def _number(env: dict[str, str], variable: str) -> float:
    try:
        value = float(env[variable])
    except ValueError:
        raise ValueError(f"{variable}={env[variable]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{variable}={env[variable]!r} is not a finite number")
    return value
