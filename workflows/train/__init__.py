from workflows.train.workflow import ReleaseTrainWorkflow

__all__ = ["ReleaseTrainWorkflow"]
