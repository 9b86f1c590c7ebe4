"""What the tests share, apart from the tests themselves (as temporalio's sdk-python
keeps tests/helpers/): no module here is collected by pytest, and no test module
imports from another test module, only from here. Fixtures stay in tests/conftest.py.

- harness.py: driving releases on the time-skipping server (the default request,
  status polling that lets workflow time pass, approvals); search attributes
- fakes.py: FakeWorld, the scripted world behind the activities
- local.py: this machine: free ports, a LocalEnvironment on them, reading /proc
- real_stack.py: releases on the real local stack (dev server, worker process,
  Traefik, services): policies, starting, polling, approving, what served the load
- http_double.py: the platform (live activity, webhooks) as a loopback HTTP server
- k8s_double.py, k8s_fixtures.py: a Kubernetes API server double, and what a
  platform team seeds into it
- logging_probe.py, sandbox_logging_probe.py, logging_workflow.py: programs that
  tests/test_logging.py runs in processes of their own
  (`python -m tests.helpers.logging_probe`)
"""
