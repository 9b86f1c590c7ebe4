"""The flag store: where an environment's flagd flag definitions live (issue #13).

One implementation per place (the local target's file, Kubernetes' ConfigMap), each a
small class with this interface, registered in pipeline/catalog.py's FLAG_STORES by
target name. A store holds one flagd JSON document per environment plus its audit log;
it knows nothing of rollouts: building and reading the flagd JSON is
pipeline/flags/document.py's, the rules pipeline/decisions/flags.py's, and
read-modify-write pipeline/flags/changes.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.models.flags import FlagChange


class FlagsInvalid(Exception):
    """The stored document is not valid flagd JSON (say, hand-edited): the message names
    the field. Nothing is written over it by a change, and services keep serving the
    last good state they loaded (flagd's file resolver ignores a file it cannot parse)."""


class FlagUnknown(Exception):
    """A change or read names a flag the store does not define."""


class FlagRuleBroken(ValueError):
    """A change that would break a rule (pipeline/decisions/flags.py); the message names the field."""


class WriteConflict(Exception):
    """Another writer changed the document between this writer's read and its write."""


@dataclass(frozen=True)
class Snapshot:
    """A document as read, with the version a write must match (optimistic concurrency)."""

    document: dict[str, Any]
    version: str
    """Opaque: the ConfigMap's resourceVersion, the file's content hash; "" when absent."""


class FlagStore(Protocol):
    environment: str

    @property
    def location(self) -> str:
        """Where the document lives, for messages (a path, namespace/name)."""
        ...

    async def read(self) -> Snapshot:
        """The current document (an empty flagd document when none exists yet). Raises
        FlagsInvalid when it is not valid JSON or not flagd's shape."""
        ...

    async def write(self, snapshot: Snapshot, document: dict[str, Any], change: FlagChange) -> None:
        """Replace the document read as `snapshot` with `document` atomically (readers see
        the old or the new one whole) and append `change` to the audit log. Raises
        WriteConflict when the document changed since `snapshot`."""
        ...

    async def history(self, flag: str | None = None) -> list[FlagChange]:
        """The audit log, oldest first; only `flag`'s changes when given."""
        ...


def audit_entries(lines: list[str], flag: str | None) -> list[FlagChange]:
    """The changes in an audit log's JSON lines, only `flag`'s when given. A line cut
    by a crash mid-append is skipped: the rest of the log still counts."""
    changes = []
    for line in lines:
        try:
            change = FlagChange.model_validate_json(line)
        except ValueError:
            continue
        if flag is None or change.flag == flag:
            changes.append(change)
    return changes
