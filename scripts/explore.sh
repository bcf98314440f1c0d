#!/usr/bin/env bash
# Brings the explorer up on the shipped demo database (assets/demo.duckdb), or on $EXPLORER_DB.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh app
. .venv/bin/activate
exec streamlit run app.py --server.headless true --browser.gatherUsageStats false "$@"
