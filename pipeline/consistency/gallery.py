"""The ADR-017 photography checks, built in for the sample gallery: shoot references,
file references, client permissions and the migration's performance impact.

The schema deliberately leaves photos.shoot_id and photos.file_ref without foreign
keys, and access without a permission is a business rule: these checks catch what a
bad release writes that the database lets through."""

from __future__ import annotations

from pathlib import Path

from pipeline.consistency.base import ConsistencyCheck
from pipeline.consistency.files import FileReferences
from pipeline.consistency.performance import PerformanceImpact
from pipeline.consistency.sql import SqlCheck

ORPHAN_PHOTOS = SqlCheck(
    name="gallery.shoot_references",
    sql="SELECT count(*) FROM photos p WHERE NOT EXISTS (SELECT 1 FROM shoots s WHERE s.id = p.shoot_id)",
    what="photos whose shoot does not exist",
)

ACCESS_WITHOUT_PERMISSION = SqlCheck(
    name="gallery.client_permissions",
    sql=(
        "SELECT count(*) FROM gallery_access a WHERE NOT EXISTS (SELECT 1 FROM gallery_permissions g"
        " WHERE g.client_id = a.client_id AND g.shoot_id = a.shoot_id)"
    ),
    what="client gallery access rows without a permission row",
)


def gallery_checks(files_dir: str | Path | None) -> list[ConsistencyCheck]:
    """A fresh set of the gallery's checks. Without a storage directory (not the local
    target) the file check only checks the `files` rows. The file and performance
    checks keep state between runs, so a caller keeps the set it runs."""
    return [ORPHAN_PHOTOS, FileReferences(files_dir), ACCESS_WITHOUT_PERMISSION, PerformanceImpact()]
