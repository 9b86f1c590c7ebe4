"""The worker's release gates: who may approve, when production may change, where
live activity is read and which webhooks hear about releases.

They come from the JSON file named by PIPELINE_GATES_FILE (a `GatesConfig`), which
belongs to whoever runs the worker: a release request can add approval stages but
never remove a configured one, widen the approvers or skip the calendar. The file
is read at each use, so an ad-hoc freeze added during a release applies at its next
production change. Without a file, the built-in gates apply: anyone may approve,
production may change at any time, and the sample `gallery` service's live activity
is read from its stable version's `/platform/activity` on the local target.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from pipeline.decisions.validation import describe_problems
from pipeline.models import GatesConfig, ReleaseGates, StageGate
from pipeline.suites import SAMPLE_SERVICE

GATES_FILE_VARIABLE = "PIPELINE_GATES_FILE"
BUILT_IN_SOURCE = "built-in gates"
BUILT_IN = GatesConfig.model_validate(
    {"services": {SAMPLE_SERVICE: {"live_activity": {"url": "{stable}/platform/activity", "targets": ["local"]}}}}
)


class GatesConfigError(Exception):
    """The gates file is missing or invalid; the message names the file and the problem."""


def load_gates_config(environ: dict[str, str] | None = None) -> tuple[GatesConfig, str]:
    """The configured gates and where they came from."""
    path = (os.environ if environ is None else environ).get(GATES_FILE_VARIABLE)
    if not path:
        return BUILT_IN, BUILT_IN_SOURCE
    try:
        return GatesConfig.model_validate(json.loads(Path(path).read_text())), path
    except (OSError, json.JSONDecodeError) as error:
        raise GatesConfigError(f"cannot read the gates file {path}: {error}") from None
    except ValidationError as error:
        raise GatesConfigError(f"invalid gates file {path}: {'; '.join(describe_problems(error))}") from None


def release_gates(config: GatesConfig, service: str, source: str) -> ReleaseGates:
    """The part of the gates a release keeps in its history, groups expanded to people."""
    gates = config.for_service(service)
    return ReleaseGates(
        approvals={
            stage: StageGate(
                anyone=False,
                approvers=_people(config, rule.users, rule.groups),
                groups=rule.groups,
                min_approvals=rule.min_approvals,
                forbid_author=rule.forbid_author,
            )
            for stage, rule in gates.approvals.items()
        },
        break_glass=_people(config, gates.break_glass.users, gates.break_glass.groups),
        webhooks={webhook.name: webhook.events for webhook in gates.webhooks},
        source=source,
    )


def _people(config: GatesConfig, users: list[str], groups: list[str]) -> list[str]:
    return sorted({*users, *(member for group in groups for member in config.groups[group])})
