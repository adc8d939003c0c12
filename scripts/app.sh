#!/usr/bin/env bash
# Set up a virtual environment and start the app on the shipped model (http://127.0.0.1:7860).
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements.txt -e .
exec .venv/bin/python app.py "$@"
