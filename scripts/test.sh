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
export CI_REQUIRE_APP_VENV=1
. .venv/bin/activate
echo "setup: $(( $(date +%s) - start )) s"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# --durations: the slowest tests in every run, so the suite stays within its ~15 min budget
exec python -m pytest -q -p no:cacheprovider --durations=30 tests "$@"
