"""One release of the soak, as the soak follows it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def elapsed(since: float) -> str:
    return f"{time.monotonic() - since:7.1f}s"


@dataclass
class Release:
    workflow_id: str
    service: str
    version: str
    expected: str | None
    """`promoted`, `rolled_back`, or None: any outcome, as long as it ends."""
    bad: bool = False
    started_at: float = 0.0
    ended_at: float | None = None
    gave_up_at: float | None = None
    outcome: str | None = None
    note: str = ""
    changes: list[tuple[float, tuple]] = field(default_factory=list)
    timeline: list[Any] = field(default_factory=list)
    """The last timeline its status showed."""

    @property
    def as_expected(self) -> bool:
        return self.ended_at is not None and (self.expected is None or self.outcome == self.expected)

    def longest_stall(self) -> tuple[float, str, float, float]:
        """The longest time its status (phase, canary_weight, pending approval) did not
        change, where, and from when to when. Approval waits count: this script
        approves within a poll."""
        longest, where, since, until = 0.0, "", 0.0, 0.0
        marks = [*self.changes, (self.ended_at or self.gave_up_at or time.monotonic(), ("end", None, None))]
        for (at, key), (next_at, _) in zip(marks, marks[1:]):
            if next_at - at > longest:
                waiting = f" waiting for {key[2]} approval" if key[2] else ""
                longest, where, since, until = next_at - at, f"{self.workflow_id} in {key[0]} at {key[1]}%{waiting}", at, next_at
        return longest, where, since, until

    def timeline_between(self, since: float, until: float) -> list[str]:
        """Its timeline entries from `since` to `until` (time.monotonic())."""
        to_wall = time.time() - time.monotonic()
        entries = []
        for entry in self.timeline:
            try:
                at = datetime.fromisoformat(entry.at).timestamp()
            except (AttributeError, ValueError):
                continue
            if since + to_wall - 1 <= at <= until + to_wall + 1:
                entries.append(f"{entry.at[11:19]} {entry.message[:160]}")
        return entries
