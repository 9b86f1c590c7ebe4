"""Structured logging: JSON lines in production, readable colours in a terminal.

Standard-library records (Temporal's workflow and activity loggers among them) go
through the same structlog processors, so every line of a worker has one format.

No credential reaches a line: every record passes `Redactor`, which blanks URL
userinfo, URL query values and the values of the worker's secret-bearing
environment variables; exceptions are rendered to plain text before it (Rich's
pretty tracebacks would print local variables, tokens included, past it); and
httpx/httpcore, which log each request URL at INFO, only log warnings.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from pipeline.database import load_databases
from pipeline.errors import PermanentTargetError
from pipeline.gates import GatesConfigError, load_gates_config
from pipeline.decisions.service_env import SECRET_NAME_HINT
from pipeline.models import ServiceRef

REDACTED = "[REDACTED]"
QUIET_LOGGERS = ("httpx", "httpcore")
MIN_SECRET_LENGTH = 6
"""Shorter values are not redacted: blanking every "1" or "true" in every line would
hide more than it protects."""

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_USERINFO = re.compile(r"^(?P<scheme>[^:]+://)[^/?#@]+@")
_QUERY_VALUE = re.compile(r"(?P<name>[?&][^=&#]+=)[^&#]*")


class Redactor:
    """A structlog processor that blanks credentials in every string of an event."""

    def __init__(self, secrets: Iterable[str] = ()):
        # Longest first, so a secret containing another is blanked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return {key: self.redact(value) for key, value in event_dict.items()}

    def redact(self, value: Any) -> Any:
        """Strings redacted, containers walked; any other object becomes its redacted
        repr, which is what both renderers would print for it anyway."""
        if isinstance(value, str):
            return self._redact_text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {key: self.redact(item) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.redact(item) for item in value]
        return self._redact_text(repr(value))

    def _redact_text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _URL.sub(lambda url: _redact_url(url.group()), text)


def _redact_url(url: str) -> str:
    url = _USERINFO.sub(rf"\g<scheme>{REDACTED}@", url)
    return _QUERY_VALUE.sub(rf"\g<name>{REDACTED}", url)


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Values of the variables whose names say they hold a secret, of the gates file's
    webhook URL variables (a Slack URL is itself the token) and of the databases file's
    URL variables (a connection string may carry a password in any form)."""
    names = (
        {name for name in environ if SECRET_NAME_HINT.search(name)}
        | set(_webhook_url_variables(environ))
        | set(_database_url_variables(environ))
    )
    return [environ[name] for name in names if environ.get(name)]


def _webhook_url_variables(environ: Mapping[str, str]) -> list[str]:
    try:
        config, _ = load_gates_config(dict(environ))
    except GatesConfigError:
        return []  # the worker reports it and stops; there are no webhooks to hide
    every_service = [config.defaults, *config.services.values()]
    return [webhook.url_env for gates in every_service for webhook in gates.webhooks]


def _database_url_variables(environ: Mapping[str, str]) -> list[str]:
    try:
        config = load_databases(dict(environ))
    except PermanentTargetError:
        return []  # the first activity that needs it reports the file; nothing to hide from it
    places = [database for service in config.services.values() for database in (service.production, service.staging)]
    return [place.url_env for place in places if place.url_env]


def configure_logging(level: str | None = None, json: bool | None = None) -> None:
    json = _wants_json() if json is None else json
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                Redactor(secret_values(os.environ)),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("PIPELINE_LOG_LEVEL", "INFO"))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def release_logger(ref: ServiceRef) -> structlog.stdlib.BoundLogger:
    """A logger bound to the release, service and phase an activity works for."""
    return structlog.get_logger("pipeline").bind(
        release_id=ref.release_id, service=ref.service, phase=ref.phase.value, target=ref.target
    )


def _wants_json() -> bool:
    chosen = os.environ.get("PIPELINE_LOG_FORMAT")
    if chosen:
        return chosen == "json"
    return not sys.stderr.isatty()
