"""FeatureRolloutWorkflow (issue #13): a feature flag rolled out to segments and rising
percentages, each step analysed like a canary, with a kill switch."""

from workflows.flags.workflow import FeatureRolloutWorkflow

__all__ = ["FeatureRolloutWorkflow"]
