"""Structured logging: JSON lines in production, readable colours in a terminal.

Standard-library records (Temporal's workflow and activity loggers among them) go
through the same structlog processors, so every line of a worker has one format.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

from pipeline.models import ServiceRef


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
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("PIPELINE_LOG_LEVEL", "INFO"))


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
