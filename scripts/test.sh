#!/usr/bin/env bash
# Set up a virtual environment with the test dependencies, lint (ruff) and run the whole test suite
# (add -m "not slow" for the fast tier).
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1
if ! command -v chromium >/dev/null; then
  # The browser tests drive Debian's chromium (never a downloaded browser build).
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
    echo "warning: could not install chromium; browser tests will be skipped" >&2
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements-dev.txt -e .   # fecsim importable from anywhere (benchmarks)
.venv/bin/ruff check .   # lint first: a quick, clear failure before minutes of tests
.venv/bin/python -m pytest -q "$@"
