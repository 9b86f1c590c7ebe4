"""The worker's own database configuration (PIPELINE_DATABASES_FILE): per service, where
its production and staging databases are, how its schema is migrated and which
consistency checks run. Never part of a release request: a request names revisions,
the worker alone knows the databases."""

from __future__ import annotations

from string import Formatter
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.models.base import Strict

CHECK_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
JOB_PLACEHOLDERS = ("direction", "revision", "database")
"""What a migration Job's command may name: `{direction}` (upgrade or downgrade),
`{revision}` (the target; `base` for no schema) and `{database}` (production or staging)."""
REQUIRED_PLACEHOLDERS = ("direction", "revision")


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


class SecretKeyRef(Strict):
    """A key of a Secret in the Job's namespace: the database URL as the Job's pod reads it."""

    name: str = Field(pattern=DNS_SUBDOMAIN_PATTERN)
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]{1,253}$")


class JobDatabase(Strict):
    url_secret: SecretKeyRef
    namespace: str | None = Field(None, pattern=DNS_LABEL_PATTERN)
    """Where the Job runs (its Secret lives there too); by default the kubernetes target's
    namespace for this database: PIPELINE_K8S_NAMESPACE or PIPELINE_K8S_STAGING_NAMESPACE."""


class MigrationJobConfig(Strict):
    """How the kubernetes target migrates: a Job from the release's image runs `command`
    (an argv list, no shell) with the database URL in `url_variable`, from a Secret."""

    command: list[str] = Field(min_length=1)
    url_variable: str = Field("DATABASE_URL", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    production: JobDatabase
    staging: JobDatabase
    timeout_seconds: int = Field(1200, ge=1, le=86400)
    """The Job's activeDeadlineSeconds: past it, the cluster stops the Job and it fails."""
    keep_seconds: int = Field(86400, ge=0)
    """The Job's ttlSecondsAfterFinished: how long a finished Job stays to be read."""

    @field_validator("command")
    @classmethod
    def _known_placeholders(cls, command: list[str]) -> list[str]:
        named = {name for item in command for name in _placeholders(item)}
        if unknown := sorted(named - set(JOB_PLACEHOLDERS)):
            raise ValueError(f"unknown placeholder(s) {', '.join('{' + name + '}' for name in unknown)}; "
                             f"a command may use {', '.join('{' + name + '}' for name in JOB_PLACEHOLDERS)}")
        if missing := [name for name in REQUIRED_PLACEHOLDERS if name not in named]:
            raise ValueError(f"the command must contain {' and '.join('{' + name + '}' for name in missing)}, "
                             "so that a downgrade never runs an upgrade, nor any step another revision")
        return command


def _placeholders(item: str) -> list[str]:
    """The fields of a `str.format` template, refused unless plain names (no `{0}`,
    attributes, indexes, conversions or format specs)."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in Formatter().parse(item) if name is not None]
    except ValueError as error:
        raise ValueError(f"{item!r}: {error} (write a literal brace as {{{{ or }}}})") from None
    for name, spec, conversion in fields:
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{item!r}: placeholders are plain names like {{revision}}, not {{{name}...}}")
    return [name for name, _, _ in fields]


class MigrationsConfig(Strict):
    tool: Literal["alembic"] = "alembic"
    script_location: str
    """The directory of the service's revisions (relative paths: to the worker's working directory)."""
    job: MigrationJobConfig | None = None
    """On the kubernetes target: migrate in a Job from the release's image (pipeline/migrations/kubernetes_job.py)."""


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
