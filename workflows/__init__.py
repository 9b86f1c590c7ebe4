from workflows.lock import ServiceLockWorkflow
from workflows.release import ReleaseWorkflow

ALL = [ReleaseWorkflow, ServiceLockWorkflow]
