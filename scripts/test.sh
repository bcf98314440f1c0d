#!/usr/bin/env bash
# Installs everything (Debian chromium for the browser test) and runs the whole test suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -q && apt-get install -y -q chromium) >/dev/null
  else
    sudo apt-get update -q && sudo apt-get install -y -q chromium >/dev/null
  fi
fi
bash scripts/setup.sh all
. .venv/bin/activate
echo "setup: $(( $(date +%s) - start )) s"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python -m pytest -q -p no:cacheprovider tests "$@"
