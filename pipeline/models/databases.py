"""The worker's own database configuration (PIPELINE_DATABASES_FILE): per service, where
its production and staging databases are, how its schema is migrated and which
consistency checks run. Never part of a release request: a request names revisions,
the worker alone knows the databases."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.models.base import Strict

CHECK_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"


class DatabaseLocation(Strict):
    """Exactly one of a URL, or the name of the worker's variable holding it (so that a
    password stays out of files)."""

    url: str | None = None
    url_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseLocation:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of 'url' and 'url_env'")
        return self


class MigrationsConfig(Strict):
    tool: Literal["alembic"] = "alembic"
    script_location: str
    """The directory of the service's revisions (relative paths: to the worker's working directory)."""


class SqlCheck(Strict):
    """A consistency check from configuration: SQL returning one integer, the number of violations."""

    name: str = Field(pattern=CHECK_NAME_PATTERN)
    sql: str = Field(min_length=1)


class ServiceDatabase(Strict):
    production: DatabaseLocation
    staging: DatabaseLocation
    migrations: MigrationsConfig | None = None
    checks: list[SqlCheck] = Field(default_factory=list)
    builtin_checks: Literal["gallery"] | None = None
    """A family of checks built into the pipeline for a known service (the sample gallery's)."""
    files_dir: str | None = None
    """Local target only: the directory where the service keeps its files (the gallery's photos)."""


class DatabasesConfig(Strict):
    services: dict[str, ServiceDatabase] = Field(default_factory=dict)
