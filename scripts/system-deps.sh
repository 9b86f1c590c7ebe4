#!/usr/bin/env bash
# System packages the tests use beyond pip: a Prometheus server for
# tests/test_prometheus_integration.py and a Chromium for the headless-browser tests
# of the release report and the Temporal UI (tests/test_report.py, tests/test_ui.py;
# Playwright drives it, never downloading a browser of its own), Debian's packages.
# Idempotent. Without root it says what to install and those tests skip with that reason.
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "note: ${missing[*]} not installed (sudo apt-get install ${missing[*]}); their tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
