from workflows.flags import FeatureRolloutWorkflow
from workflows.lock import ServiceLockWorkflow
from workflows.release import ReleaseWorkflow
from workflows.train import ReleaseTrainWorkflow

ALL = [ReleaseWorkflow, ServiceLockWorkflow, ReleaseTrainWorkflow, FeatureRolloutWorkflow]
