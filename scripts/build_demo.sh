#!/usr/bin/env bash
# Rebuilds everything the embedded default ships, from scratch, offline:
# corpus -> SAE training (sae-lens runner, resumable) -> SAE card -> demo database.
# CPU: ~1 h for the SAE (5 M tokens); the steps skip what already exists.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RECIPE=recipes/saes/smollm2-l6-topk-4k-k32.json
NAME=$(basename "$RECIPE" .json)
[ -f data/corpus/smollm2-debian-128.parquet ] || python -m precompute corpus
[ -f "assets/saes/$NAME/cfg.json" ] || python -m precompute train "$RECIPE"
[ -f "assets/saes/$NAME/card.json" ] || python -m precompute card "assets/saes/$NAME" --recipe "$RECIPE"
python -m precompute build --sae "assets/saes/$NAME" --db assets/demo.duckdb --fresh
