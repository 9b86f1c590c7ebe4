"""Where each service's databases are: the worker's PIPELINE_DATABASES_FILE (a
`DatabasesConfig`), read at each use like the gates file. A release request names
revisions only; URLs come from here, and from the worker's environment for `url_env`,
so that no URL enters workflow history. Errors name the service and the database,
never the URL (which may hold a password)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from pipeline.decisions.validation import describe_problems
from pipeline.errors import PermanentTargetError
from pipeline.models import DatabasesConfig, ServiceDatabase

DATABASES_FILE_VARIABLE = "PIPELINE_DATABASES_FILE"
Which = Literal["production", "staging"]


def load_databases(environ: dict[str, str] | None = None) -> DatabasesConfig:
    """The configured databases; none without a file."""
    path = (os.environ if environ is None else environ).get(DATABASES_FILE_VARIABLE)
    if not path:
        return DatabasesConfig()
    try:
        return DatabasesConfig.model_validate(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as error:
        raise PermanentTargetError(f"cannot read the databases file {path}: {error}") from None
    except ValidationError as error:
        raise PermanentTargetError(f"invalid databases file {path}: {'; '.join(describe_problems(error))}") from None


def service_database(service: str, environ: dict[str, str] | None = None) -> ServiceDatabase | None:
    """The service's database configuration, None when it has none."""
    return load_databases(environ).services.get(service)


def database_url(service: str, which: Which, environ: dict[str, str] | None = None) -> str:
    """The URL of the service's production or staging database."""
    environ = dict(os.environ if environ is None else environ)
    configured = service_database(service, environ)
    if configured is None:
        raise PermanentTargetError(
            f"{service} has no database configured for this worker (see {DATABASES_FILE_VARIABLE})"
        )
    location = getattr(configured, which)
    if location.url is not None:
        return location.url
    url = environ.get(location.url_env)
    if not url:
        raise PermanentTargetError(
            f"the {which} database of {service} is read from the worker's {location.url_env}, which is not set"
        )
    return url
