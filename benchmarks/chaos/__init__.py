"""Soak and chaos on the real local stack: many releases over several services while
the worker is SIGKILLed at random moments, the Temporal server restarts once on its
database file, the router is killed once and malformed signals and starts arrive
through the `temporal` CLI. It prints what an operator would want to know afterwards,
and exits non-zero when a figure misses its threshold.

Each service runs one release at a time (the next starts when the previous ends),
services in parallel. A service's first release installs it; later ones are canaries,
about one in three of them bad (half its responses fail, and only the `unit` suite
runs in staging, so production traffic must catch it): good ones should end
`promoted`, bad ones `rolled_back`. The script gives every approval through the
`approve` signal. A LoadGenerator sends traffic to every service for the whole soak.

Kill switch after a worker loss: a release on its own service, caught while a
`set_traffic` activity runs in its traffic shift; the worker is SIGKILLed, the
`kill_switch` signal sent, the worker restarted 2 s later, and the clock runs from the
restarted worker being up to Traefik's API serving that service 100% to stable.

Thresholds (`--short` is meant for CI; they are deliberately a little generous):
  releases ending as expected   100 %  (every release, not a sample)
  traffic steps applied twice   0      (consecutive identical entries of traffic.log)
  orphan processes              0      (after the stack stopped; and one service
                                        process per service when the soak ends)
  workflow tasks failed         0      (benign UnhandledCommand races excluded), none stuck
  kill switch after worker loss <= 5 s after the restarted worker is up
  router killed -> answering    <= 5 s (target 2 s; more than 10 s: restarted here, failed)
  longest stall                 <= 45 s (a heartbeat timeout of 30 s plus the fast
                                        policy's longest natural wait), plus 30 s
                                        per further worker kill inside the stall
  failed requests               none beyond the bad canaries' injected 500s and
                                the router outage, within 0.1 % of all requests

`--short` (12 releases over 2 services, 2 random worker kills, plus the kill-switch
release, the server restart, the router kill and the malformed inputs) shortens the
canary to 4 s and each step to 2 s; it takes about 3 minutes on an idle 2-core
machine, and more under load, where the worker takes longer to start after each kill.

    .venv/bin/python -m benchmarks.chaos --short          # CI
    .venv/bin/python -m benchmarks.chaos [--releases 100] [--services 4] [--worker-kills 10] [--seed 1]
"""
