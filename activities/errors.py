"""Translate adapter failures into Temporal's retry semantics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from pipeline.errors import PermanentTargetError


@contextmanager
def permanent_errors_not_retried() -> Iterator[None]:
    """A failure no retry can fix fails the activity at once instead of retrying it."""
    try:
        yield
    except PermanentTargetError as error:
        raise ApplicationError(str(error), type="PermanentTargetError", non_retryable=True) from error
