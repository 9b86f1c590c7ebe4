#!/usr/bin/env bash
# README command two: every test (unit, workflow on the time-skipping server,
# replay, integration on the real dev server + Traefik + sample services + Prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/system-deps.sh
exec .venv/bin/pytest "$@"
