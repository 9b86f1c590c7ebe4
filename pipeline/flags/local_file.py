"""The local target's flag store: one flagd JSON file per environment under the local
environment's state directory, which the services read through OpenFeature's flagd
file resolver (FLAGD_FILE), and an audit log (JSON lines) next to it.

A write takes an exclusive lock on `<environment>.lock` (the worker's activities and
`releasectl flags off` may write at once), checks the file is still the one the change
was computed from, writes a temporary file in the same directory, fsyncs it and
renames it over the old one: the resolver, polling the file, sees the old document or
the new one whole, never a half-written one.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.decisions.flags import document_problems, parse_document
from pipeline.flags.base import FlagRuleBroken, FlagsInvalid, Snapshot, WriteConflict, audit_entries
from pipeline.flags.document import empty_document
from pipeline.local.env import LocalEnvironment
from pipeline.models.flags import FlagChange


def flags_file(state_dir: Path, environment: str) -> Path:
    """Where the local target keeps `environment`'s flags (the FLAGD_FILE its services get)."""
    return Path(state_dir) / "flags" / f"{environment}.flagd.json"


class LocalFileStore:
    def __init__(self, path: Path, environment: str):
        self.path = path
        self.environment = environment
        self.audit_path = path.with_name(f"{environment}.audit.jsonl")
        self.lock_path = path.with_name(f"{environment}.lock")

    @classmethod
    def for_environment(cls, environment: str) -> LocalFileStore:
        """The store of the local environment the worker's (or CLI's) PIPELINE_LOCAL_* variables name."""
        return cls(flags_file(LocalEnvironment.from_env().state_dir, environment), environment)

    @property
    def location(self) -> str:
        return str(self.path)

    async def read(self) -> Snapshot:
        return await asyncio.to_thread(self._read)

    async def write(self, snapshot: Snapshot, document: dict[str, Any], change: FlagChange) -> None:
        await asyncio.to_thread(self._write, snapshot, document, change)

    async def history(self, flag: str | None = None) -> list[FlagChange]:
        return await asyncio.to_thread(self._history, flag)

    def _read(self) -> Snapshot:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Snapshot(empty_document(), "")
        document, problems = parse_document(raw.decode("utf-8", errors="replace"), str(self.path))
        if document is None:
            raise FlagsInvalid("; ".join(problems))
        return Snapshot(document, _digest(raw))

    def _write(self, snapshot: Snapshot, document: dict[str, Any], change: FlagChange) -> None:
        problems = document_problems(document)
        if problems:
            raise FlagRuleBroken("; ".join(problems))
        text = json.dumps(document, indent=2, sort_keys=False) + "\n"
        with self._locked():
            if self._current_version() != snapshot.version:
                raise WriteConflict(f"{self.path} changed since it was read")
            _replace_atomically(self.path, text)
            with self.audit_path.open("a") as audit:
                audit.write(change.model_dump_json() + "\n")
                audit.flush()
                os.fsync(audit.fileno())

    def _current_version(self) -> str:
        try:
            return _digest(self.path.read_bytes())
        except FileNotFoundError:
            return ""

    def _history(self, flag: str | None) -> list[FlagChange]:
        try:
            return audit_entries(self.audit_path.read_text().splitlines(), flag)
        except FileNotFoundError:
            return []

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _replace_atomically(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename, fsync the directory: after a
    crash the file is the old document or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
