"""Every adapter a release may use, one table per family: its name, the factory that
builds it (a `module:attribute` path imported only when it is first built, so this
module stays cheap and the models can read it) and what it can do.

Adding an adapter is one module and one row here: request validation
(pipeline/models/) derives the names a request may give from these tables, and the
factories (pipeline/targets/, pipeline/routers/, pipeline/metrics/) build from them.

Factories, per family:
- target: `() -> DeployTarget`, configured from the worker's environment;
- router: `(*args) -> TrafficRouter`, with the arguments of the targets that use it
  (the local environment for Traefik; the Kube access and namespace for cluster routers);
- metrics provider: `(ObserveRequest) -> MetricsProvider`;
- migration tool: `(script_location) -> MigrationTool` (pipeline/migrations/base.py),
  named by a service's `migrations.tool` in the worker's databases file;
- flag store: `(environment) -> FlagStore` (pipeline/flags/base.py), by target name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Adapter:
    factory: str
    """`module:attribute[.attribute]` of the callable that builds the adapter."""

    def resolve(self) -> Callable[..., Any]:
        """The factory, its module imported now."""
        module, _, path = self.factory.partition(":")
        found: Any = importlib.import_module(module)
        for attribute in path.split("."):
            found = getattr(found, attribute)
        return found

    def build(self, *args: Any) -> Any:
        return self.resolve()(*args)


@dataclass(frozen=True)
class Target(Adapter):
    metrics_provider: str
    """The provider a release reads when its policy names none."""
    router: str
    """The router used when the worker's configuration names none."""


@dataclass(frozen=True)
class Router(Adapter):
    targets: frozenset[str]
    """The targets that can route with it."""


@dataclass(frozen=True)
class MetricsProvider(Adapter):
    targets: frozenset[str]
    """The targets whose versions it can read."""
    samples: bool = False
    """Whether it returns raw samples, which the baseline comparison tests."""


TARGETS: dict[str, Target] = {
    "local": Target("pipeline.targets.local:LocalTarget.from_env", metrics_provider="traefik", router="traefik"),
    "kubernetes": Target(
        "pipeline.targets.kubernetes:KubernetesTarget.from_env", metrics_provider="prometheus", router="istio"
    ),
    "sim": Target("pipeline.targets.sim:SimTarget.from_env", metrics_provider="sim", router="sim"),
}

ROUTERS: dict[str, Router] = {
    "traefik": Router("pipeline.routers.traefik:TraefikRouter", targets=frozenset({"local"})),
    "istio": Router("pipeline.routers.istio:IstioRouter", targets=frozenset({"kubernetes"})),
    "gateway-api": Router("pipeline.routers.gateway_api:GatewayApiRouter", targets=frozenset({"kubernetes"})),
    "sim": Router("pipeline.sim.router:SimRouter", targets=frozenset({"sim"})),
}

METRICS_PROVIDERS: dict[str, MetricsProvider] = {
    "traefik": MetricsProvider("pipeline.metrics.traefik:for_request", targets=frozenset({"local"})),
    "prometheus": MetricsProvider(
        "pipeline.metrics.prometheus:PrometheusMetrics.for_request", targets=frozenset({"local", "kubernetes"}), samples=True
    ),
    "sim": MetricsProvider("pipeline.metrics.sim:for_request", targets=frozenset({"sim"}), samples=True),
}

MIGRATION_TOOLS: dict[str, Adapter] = {
    "alembic": Adapter("pipeline.migrations.alembic:AlembicTool"),
}

FLAG_STORES: dict[str, Adapter] = {
    "local": Adapter("pipeline.flags.local_file:LocalFileStore.for_environment"),
    "kubernetes": Adapter("pipeline.flags.configmap:ConfigMapStore.for_environment"),
}
"""Feature-flag stores by target (pipeline/flags/base.py): `(environment) -> FlagStore`."""


def routers_of(target: str) -> list[str]:
    """The routers `target` can use, in table order."""
    return [name for name, router in ROUTERS.items() if target in router.targets]


def metrics_provider_problem(target: str, provider: str | None, needs_samples: bool = False) -> str | None:
    """Why `provider` (None: the target's default) cannot serve a release on `target`,
    or None when it can."""
    name = provider or TARGETS[target].metrics_provider
    entry = METRICS_PROVIDERS.get(name)
    if entry is None or target not in entry.targets:
        return f"policy.metrics_provider {name!r} cannot read the {target} target"
    if needs_samples and not entry.samples:
        sampling = " or ".join(
            f'"{other}"' for other, candidate in METRICS_PROVIDERS.items() if candidate.samples and target in candidate.targets
        )
        return (f"policy.baseline needs raw samples, which the {name} provider does not give; "
                f"set policy.metrics_provider to {sampling}")
    return None
