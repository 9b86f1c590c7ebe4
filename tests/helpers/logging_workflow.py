"""A workflow that only logs, for tests/test_logging.py. It imports nothing but
temporalio, so the sandbox loads it as it would any workflow module."""

from temporalio import workflow


@workflow.defn
class LoggingWorkflow:
    @workflow.run
    async def run(self, fail_task: bool) -> None:
        # A datetime is no JSON value: the JSON renderer falls back to its repr.
        workflow.logger.warning("workflow says hello", extra={"at": workflow.now()})
        if fail_task:
            raise RuntimeError("workflow task failed on purpose")
