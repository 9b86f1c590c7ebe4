#!/usr/bin/env bash
# System packages the tests use beyond pip: a Prometheus server for
# tests/test_prometheus_integration.py (Debian's package). Idempotent. Without root
# it says what to install and the Prometheus tests skip with that reason.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "note: prometheus is not installed (sudo apt-get install prometheus); its tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
