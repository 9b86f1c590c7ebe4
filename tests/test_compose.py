"""docker-compose.temporal.yml cannot run here (no Docker), so its structure is
checked instead: valid YAML, every service runnable and pinned, and the search
attributes it registers exactly those the pipeline writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.common import SearchAttributeIndexedValueType

from pipeline import search_attributes

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (pip install pyyaml) to parse the compose file")

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.temporal.yml"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def test_every_service_has_a_pinned_image_or_a_build(services):
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if "image" in service:
            repository, _, tag = service["image"].partition(":")
            assert tag and tag != "latest", f"{name}: pin {repository} to a version"


def test_dependencies_name_existing_services(services):
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name


def test_server_and_admin_tools_are_the_same_version(services):
    """The admin tools carry the schema the server expects; they are upgraded together."""
    tags = {service["image"].partition(":")[2] for service in services.values() if "temporalio/server" in service.get("image", "")
            or "temporalio/admin-tools" in service.get("image", "")}
    assert len(tags) == 1


def test_registers_exactly_the_pipelines_search_attributes_as_keywords(services):
    setup = services["temporal-namespace-setup"]
    registered = setup["environment"]["RELEASE_SEARCH_ATTRIBUTES"].split()
    assert sorted(registered) == sorted(key.name for key in search_attributes.ALL)
    assert all(key.indexed_value_type is SearchAttributeIndexedValueType.KEYWORD for key in search_attributes.ALL)
    script = "".join(setup["command"])
    assert "search-attribute create" in script and "--type Keyword" in script


def test_optional_worker_is_behind_a_profile_and_reaches_the_server_by_service_name(services):
    worker = services["worker"]
    assert worker["profiles"] == ["worker"]
    assert worker["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert '"workers.main"' in worker["build"]["dockerfile_inline"]
