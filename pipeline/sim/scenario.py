"""A simulation's scenario: the load on the service, the seed of its draws, and faults
per version that override what the release's env asks for (so that a policy can be
tried against a known incident without editing the request). Read from JSON:

    {"seed": "incident-42", "requests_per_second": 20, "stable_version": "1.4.0",
     "versions": {"2.0.0": {"error_rate": 0.05, "faults_after_seconds": 900}}}

Each version's keys are the fields of pipeline.sim.model.Faults. `stable_version` is
what production runs when a simulated release starts (null: a first release)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError

from pipeline.models.base import VERSION_PATTERN, Input
from pipeline.sim.model import Faults, Traffic


class VersionFaults(Input):
    error_rate: float | None = Field(None, ge=0, le=1)
    latency_ms: float | None = Field(None, ge=0)
    ready_delay_seconds: float | None = Field(None, ge=0)
    faults_after_seconds: float | None = Field(None, ge=0)
    latency_median_ms: float | None = Field(None, gt=0)
    latency_sigma: float | None = Field(None, ge=0)
    crash_after_seconds: float | None = Field(None, ge=0)

    def applied_to(self, faults: Faults) -> Faults:
        return faults.with_changes(**self.model_dump(exclude_none=True))


class Scenario(Input):
    seed: str = "0"
    requests_per_second: float = Field(Traffic.requests_per_second, gt=0, le=10_000)
    segment_share: float = Field(Traffic.segment_share, ge=0, le=1)
    stable_version: str | None = Field("stable", pattern=VERSION_PATTERN)
    versions: dict[str, VersionFaults] = Field(default_factory=dict)

    @property
    def traffic(self) -> Traffic:
        return Traffic(requests_per_second=self.requests_per_second, segment_share=self.segment_share)

    def faults_of(self, version: str, env: dict[str, str]) -> Faults:
        """The release env's faults for `version`, overridden by this scenario's."""
        faults = Faults.from_env(env)
        override = self.versions.get(version)
        return override.applied_to(faults) if override else faults


class ScenarioError(ValueError):
    """A scenario file that cannot be used, with a message naming what is wrong."""


def load_scenario(path: Path) -> Scenario:
    try:
        return Scenario.model_validate_json(path.read_text())
    except OSError as error:
        raise ScenarioError(f"scenario {path}: cannot be read ({error.strerror})") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'scenario'}: {e['msg']}" for e in error.errors())
        raise ScenarioError(f"scenario {path}: {problems}") from None
