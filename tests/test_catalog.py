"""The adapter catalog (pipeline/catalog.py) and the shape it keeps: every row builds,
the catalog is cheap to import, request validation reads it, and the routers form no
import loop."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from pipeline.catalog import METRICS_PROVIDERS, ROUTERS, TARGETS, metrics_provider_problem, routers_of
from pipeline.models import MetricsProviderName, ReleaseRequest, TargetName

ROOT = Path(__file__).resolve().parent.parent
ROUTER_MODULES = sorted(path.stem for path in (ROOT / "pipeline" / "routers").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("entry", [*TARGETS.values(), *ROUTERS.values(), *METRICS_PROVIDERS.values()],
                         ids=lambda entry: entry.factory)
def test_every_row_names_a_factory_that_exists(entry):
    assert callable(entry.resolve())


def test_rows_refer_to_rows_of_the_other_tables():
    for name, target in TARGETS.items():
        assert target.metrics_provider in METRICS_PROVIDERS and name in METRICS_PROVIDERS[target.metrics_provider].targets
        assert target.router in routers_of(name)
    assert {target for entry in [*ROUTERS.values(), *METRICS_PROVIDERS.values()] for target in entry.targets} <= set(TARGETS)


def test_the_request_names_come_from_the_catalog():
    assert get_args(TargetName) == tuple(TARGETS)
    assert get_args(MetricsProviderName) == tuple(METRICS_PROVIDERS)
    assert routers_of("kubernetes") == ["istio", "gateway-api"]


def test_request_validation_reads_the_capabilities():
    assert metrics_provider_problem("kubernetes", "traefik") == "policy.metrics_provider 'traefik' cannot read the kubernetes target"
    assert "set policy.metrics_provider to \"prometheus\"" in metrics_provider_problem("local", None, needs_samples=True)
    assert metrics_provider_problem("local", "prometheus", needs_samples=True) is None
    with pytest.raises(ValueError, match="cannot read the kubernetes target"):
        ReleaseRequest(service="gallery", version="1.0", target="kubernetes", policy={"metrics_provider": "traefik"})


def test_importing_the_catalog_imports_no_adapter():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, pipeline.catalog; print(sorted(m for m in sys.modules if m.startswith('pipeline')))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    assert loaded.strip() == "['pipeline', 'pipeline.catalog']"


@pytest.mark.parametrize("module", ROUTER_MODULES)
def test_no_router_imports_another_router(module):
    tree = ast.parse((ROOT / "pipeline" / "routers" / f"{module}.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    implementations = {entry.factory.partition(":")[0] for entry in ROUTERS.values()}
    assert not imported & (implementations - {f"pipeline.routers.{module}"})
    assert not any(name.startswith(("pipeline.targets", "pipeline.metrics")) for name in imported)


@pytest.mark.parametrize("module", ["pipeline.errors", *(f"pipeline.routers.{name}" for name in ROUTER_MODULES)])
def test_each_module_imports_first_without_a_loop(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, check=True)


def test_the_errors_module_imports_nothing_of_the_pipeline():
    tree = ast.parse((ROOT / "pipeline" / "errors.py").read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                and getattr(node, "module", "") != "__future__"]
