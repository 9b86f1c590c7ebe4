"""Search attributes that let operators filter releases in the Temporal UI, e.g.
`ReleaseService="gallery" AND ReleaseOutcome="rolled_back"`."""

from temporalio.common import SearchAttributeKey

SERVICE = SearchAttributeKey.for_keyword("ReleaseService")
VERSION = SearchAttributeKey.for_keyword("ReleaseVersion")
PHASE = SearchAttributeKey.for_keyword("ReleasePhase")
OUTCOME = SearchAttributeKey.for_keyword("ReleaseOutcome")

ALL = [SERVICE, VERSION, PHASE, OUTCOME]
