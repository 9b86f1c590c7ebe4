#!/usr/bin/env bash
# README command one: a local Temporal (with UI), a worker, the local target and real releases.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m pipeline.local.demo "$@"
