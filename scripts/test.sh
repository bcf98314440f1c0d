#!/usr/bin/env bash
# Installs everything (Debian chromium for the browser test) and runs the whole test suite offline.
# Installing chromium needs root or a sudo that works without a password; otherwise this says what to run.
# TORCH_INDEX_URL: see scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
. scripts/common.sh
if ! command -v chromium >/dev/null; then
  apt_install "the browser test runs it" chromium || exit 1
fi
if [ ! -e /usr/share/wordnet/index.noun ]; then
  apt_install "the WordNet tasks read its data files" wordnet-base || exit 1
fi
bash scripts/setup.sh all
# A second venv with the explorer's packages only (the README's first command): every page is rendered in it.
VENV=.venv-app bash scripts/setup.sh app
export EXPLORER_CI=1  # tests that need what this script installs fail, rather than skip, without it
. .venv/bin/activate
echo "setup: $(( $(date +%s) - start )) s"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check .
echo "ruff: $(( $(date +%s) - start )) s since the start"
# -n 2: the two cores of the CI machine, a worker each. --durations: the slowest tests in every run, so the suite
# stays within its 10 min budget (pytest prints the test time on its last line).
exec python -m pytest -q -p no:cacheprovider -n 2 --durations=30 tests "$@"
