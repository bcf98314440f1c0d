#!/usr/bin/env bash
# Brings the explorer up on the shipped demo database (assets/demo.duckdb), or on $EXPLORER_DB.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh app
. .venv/bin/activate
# No file watcher: serving is not editing, and a watcher walks the whole tree (.venv included) again
# whenever other jobs write under the repo (bench/concurrency.py measured 4x the server CPU per view).
exec streamlit run app.py --server.headless true --browser.gatherUsageStats false --server.fileWatcherType none "$@"
