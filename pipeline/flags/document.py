"""flagd JSON, built and read back: one flag's definition for a serving state, and the
pipeline's view (`FlagState`) of a stored flag.

The shapes (see the README's "Feature flags"): off = defaultVariant off, no targeting;
partial = segments matched with `in` on the `segment` attribute, then flagd's
`fractional` on flagKey + targetingKey with the on bucket first, so that raising the
percentage only adds users; on = defaultVariant on. What the pipeline needs to read
the state back (on/off variants, segments, percentage, who changed it, kills) is kept
in the flag's `metadata`, which flagd carries and services ignore.
"""

from __future__ import annotations

import copy
from typing import Any

from pipeline.models.flags import SEGMENT_ATTRIBUTE, FlagSetting, FlagState, Serving

SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"


def empty_document() -> dict[str, Any]:
    return {"$schema": SCHEMA_URL, "flags": {}, "metadata": {"revision": 0}}


def revision(document: dict[str, Any]) -> int:
    value = (document.get("metadata") or {}).get("revision", 0)
    return value if isinstance(value, int) else 0


def serving(setting: FlagSetting) -> Serving:
    if setting.percentage >= 100:
        return Serving.ON
    if setting.percentage == 0 and not setting.segments:
        return Serving.OFF
    return Serving.PARTIAL


def targeting(setting: FlagSetting, on: str, off: str) -> dict[str, Any] | None:
    """The flagd targeting rule for a partial setting (None for off and on)."""
    if serving(setting) is not Serving.PARTIAL:
        return None
    rest: Any = off
    if setting.percentage > 0:
        rest = {
            "fractional": [
                {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]},
                [on, setting.percentage],
                [off, 100 - setting.percentage],
            ]
        }
    if not setting.segments:
        return rest
    return {"if": [{"in": [{"var": SEGMENT_ATTRIBUTE}, list(setting.segments)]}, on, rest]}


def flag_definition(
    variants: dict[str, Any], on: str, off: str, setting: FlagSetting, metadata: dict[str, Any]
) -> dict[str, Any]:
    """One flag's flagd definition serving `setting`, with the pipeline's metadata."""
    state = serving(setting)
    definition: dict[str, Any] = {
        "state": "ENABLED",
        "variants": dict(variants),
        "defaultVariant": on if state is Serving.ON else off,
    }
    rule = targeting(setting, on, off)
    if rule is not None:
        definition["targeting"] = rule
    definition["metadata"] = {
        **{key: value for key, value in metadata.items() if value is not None},
        "onVariant": on,
        "offVariant": off,
        "segments": ",".join(setting.segments),
        "percentage": setting.percentage,
    }
    return definition


def with_flag(document: dict[str, Any], name: str, definition: dict[str, Any], new_revision: int) -> dict[str, Any]:
    """A copy of `document` with `name` defined as `definition` and the store's revision set."""
    changed = copy.deepcopy(document)
    changed.setdefault("$schema", SCHEMA_URL)
    changed.setdefault("flags", {})[name] = definition
    changed.setdefault("metadata", {})["revision"] = new_revision
    return changed


def flag_state(document: dict[str, Any], name: str, environment: str) -> FlagState:
    """The pipeline's view of `name` in a valid document (exists=False when absent).

    A flag the pipeline did not write (no metadata) is read from its flagd fields: the
    default variant is taken as off, and a targeting rule as a partial state it cannot
    describe further."""
    definition = (document.get("flags") or {}).get(name)
    if definition is None:
        return FlagState(flag=name, environment=environment, exists=False, revision=revision(document))
    metadata = definition.get("metadata") or {}
    default = definition.get("defaultVariant")
    off = metadata.get("offVariant", default)
    on = metadata.get("onVariant")
    segments = [s for s in str(metadata.get("segments", "")).split(",") if s]
    percentage = metadata.get("percentage", 100 if on is not None and default == on else 0)
    setting = FlagSetting(segments=segments, percentage=percentage)
    if definition.get("state") == "DISABLED":
        state_serving = Serving.OFF
    elif on is None:
        state_serving = Serving.PARTIAL if definition.get("targeting") else Serving.OFF
    else:
        state_serving = serving(setting)
    return FlagState(
        flag=name,
        environment=environment,
        state=definition.get("state", "ENABLED"),
        variants=dict(definition.get("variants") or {}),
        on_variant=on,
        off_variant=off,
        default_variant=default,
        setting=setting,
        serving=state_serving,
        killed=bool(metadata.get("killed", False)),
        killed_revision=metadata.get("killedRevision"),
        kill_reason=metadata.get("killReason"),
        revision=metadata.get("revision", 0),
        changed_by=metadata.get("changedBy"),
        changed_at=metadata.get("changedAt"),
        rollout_id=metadata.get("rolloutId"),
    )


def flag_names(document: dict[str, Any]) -> list[str]:
    return sorted((document.get("flags") or {}).keys())


def rollout_sequence(document: dict[str, Any], name: str, rollout_id: str) -> int | None:
    """The sequence of the last stage `rollout_id` applied to `name`, if it was the last writer."""
    metadata = ((document.get("flags") or {}).get(name) or {}).get("metadata") or {}
    if metadata.get("rolloutId") != rollout_id:
        return None
    sequence = metadata.get("sequence")
    return sequence if isinstance(sequence, int) else None
