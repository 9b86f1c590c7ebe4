"""The local world: everything that runs the pipeline on one machine, apart from production code.

Here live the local environment (state directory, detached processes, Traefik: env.py),
the router supervisor that keeps Traefik running (router_supervisor.py), a local
Prometheus (prometheus.py), the development stack of Temporal dev server plus worker
(devstack.py), the load generator (loadgen.py), the loopback webhook sink (webhook_sink.py)
and the demo (demo.py).

Production code never imports this package, except the local target
(pipeline/targets/local.py) and its Traefik router (pipeline/routers/traefik.py), which
drive the local environment, with the Traefik metrics they expose
(pipeline/metrics/traefik.py) and the factories in pipeline/targets/ and pipeline/metrics/
that build them for the local target only.
"""
