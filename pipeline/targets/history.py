"""A service's promotion history, as a target keeps it: the versions that were
stable, newest first, each with the env its release asked for (secret references,
never values), so that a revert can run it again so. Pure functions, without I/O;
the kubernetes target stores the history as JSON in an annotation of the stable
Deployment, so it is bounded: the rollback window's versions, then names only.

A revert moves the version it returns to back to the front and the version it leaves
out of the window (into `older`): that one was reverted from for a reason, so a later
"revert to the newest in the window" must not return to it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from pydantic import Field, ValidationError

from pipeline.models import PromotedVersion, RollbackWindow
from pipeline.models.base import Strict

OLDER_LIMIT = 20
"""Names kept beyond the window: enough to tell a revert order "known, but too old"."""
SIZE_LIMIT = 64 * 1024
"""Characters of JSON: versions beyond it leave the window for `older`, newest kept,
so that large envs cannot push the annotation past Kubernetes' 256 KiB for all of an
object's annotations."""

log = structlog.get_logger()


class History(Strict):
    versions: list[PromotedVersion] = Field(default_factory=list)
    """The stable version (normally first) and the `keep` promoted before it."""
    older: list[str] = Field(default_factory=list)


def parsed(text: str | None) -> History:
    """The stored history; an unreadable one (edited by hand) is started afresh rather
    than blocking the promotion that would record the next version."""
    if not text:
        return History()
    try:
        return History.model_validate_json(text)
    except ValidationError as error:
        log.warning("history.unreadable", error=str(error))
        return History()


def promoted(history: History, version: str, env: dict[str, str], release_id: str, replaced: str | None,
             keep: int) -> History:
    """The history once `version` replaced `replaced` as stable. A `replaced` the
    history does not know (the version installed before the first promotion) is
    recorded without env."""
    entry = PromotedVersion(version=version, env=env, release_id=release_id, promoted_at=datetime.now(UTC).isoformat())
    before = [known for known in history.versions if known.version != version]
    if replaced and not any(known.version == replaced for known in before):
        before.insert(0, PromotedVersion(version=replaced))
    versions = [entry, *before]
    return _with_older(versions[: keep + 1], [known.version for known in versions[keep + 1:]] + history.older)


def reverted(history: History, version: str, replaced: str | None) -> History:
    """The history once a revert made `version` stable again, leaving `replaced`."""
    entry = next((known for known in history.versions if known.version == version), PromotedVersion(version=version))
    rest = [known for known in history.versions if known.version not in (version, replaced)]
    return _with_older([entry, *rest], ([replaced] if replaced else []) + history.older)


def window(history: History, stable: str | None, warm: str | None) -> RollbackWindow:
    return RollbackWindow(
        stable=stable,
        versions=[known for known in history.versions if known.version != stable],
        older=history.older,
        warm=[warm] if warm and warm != stable else [],
    )


def _with_older(versions: list[PromotedVersion], older: list[str]) -> History:
    """`versions` (as many as SIZE_LIMIT allows, at least the newest), and the newest
    OLDER_LIMIT of the other names."""
    while len(versions) > 1 and len(History(versions=versions).model_dump_json()) > SIZE_LIMIT:
        versions, older = versions[:-1], [versions[-1].version, *older]
    names = {known.version for known in versions}
    return History(versions=versions, older=[name for name in dict.fromkeys(older) if name not in names][:OLDER_LIMIT])
