#!/usr/bin/env bash
# Rebuilds everything the embedded default ships, from scratch, offline:
# corpus -> SAE sweep (one shared activation cache, sae-lens training, cards) -> demo database.
# Every step skips what already exists, so rerun it after an interruption. The database: 14.1 min on 2 cores
# (docs/demo.md). When the SAEs are retrained too (2 cores): ~1 h for
# the activation cache, 10-25 min per SAE.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SWEEP=recipes/sweeps/smollm2-embedded.json
# the corpus the shipped SAEs were trained on reads every Debian source; one missing would silently give another corpus
for f in /usr/share/dictd/gcide.dict.dz /usr/share/doc/jargon-text/jargon.txt.gz /usr/share/games/fortunes /usr/share/wordnet; do
  [ -e "$f" ] || { echo "missing $f: apt-get install dict-gcide bible-kjv wordnet-base fortunes jargon-text" >&2; exit 2; }
done
[ -f data/corpus/smollm2-debian-128.parquet ] || python -m precompute corpus
python -m precompute sweep "$SWEEP"
# One build for the sweep's 10 SAEs at their 3 hooks, into data/ (the model loads once; the absorption stage runs it
# once per hook for all its SAEs, the dashboards once for all 10; an interrupted build resumes from its work file when
# rerun, and a finished one skips SAEs already there),
# then the finished database replaces the shipped one. Commit first: meta.code_version names the commit.
# Absorption is cross-fitted over 5 folds (every vocabulary word measured out of fold); the paper's
# ablation metric samples at most ABLATION_CANDIDATES words per letter (default 200 in `build`) to keep a
# CPU rebuild short.
DB=data/demo-build.duckdb
ABLATION_CANDIDATES="${ABLATION_CANDIDATES:-10}"
python -m precompute build --sweep "$SWEEP" --db "$DB" --ablation-candidates "$ABLATION_CANDIDATES"
# The two WordNet tasks (precompute/absorption/tasks.py) beside first letters: the main SAE's and the Matryoshka's
# semantic categories with the paper's ablation metric too (one config, so one probe run: bench/paired_absorption.py
# compares them word by word), everything else without it (the slowest part: ~3 min per SAE and task with it,
# ~1 min without).
python -m precompute build --sae "smollm2-l6-topk-4k-k32=assets/saes/smollm2-l6-topk-4k-k32" \
  --sae "smollm2-l6-matryoshka-4k-k32=assets/saes/smollm2-l6-matryoshka-4k-k32" --db "$DB" \
  --ablation-candidates "$ABLATION_CANDIDATES" --task wordnet_category
python -m precompute build --sweep "$SWEEP" --db "$DB" --no-ablation-metric --task wordnet_category --task wordnet_pos
# The toy run (precompute/toy/hierarchy.py): a model-free "model" whose residual is a known world of parent/child
# features, its SAE and corpus shipped under assets/ (`python -m precompute toy` rewrites them from the seed). The
# model has no attention, so it cannot answer the prompt: no ablation metric. Writes the ground truth (truth_*).
python -m precompute build --model toy-hierarchy --sae assets/saes/toy-hierarchy-relu-32 \
  --corpus assets/toy/corpus.parquet --rows 0:1024 --task toy_hierarchy --no-ablation-metric --db "$DB"
# The SAE the pages open when a URL names none: the README's main SAE (the rule alone would pick the Matryoshka, the
# first of the four 4k SAEs at layer 6 by key).
python -m precompute default-sae --db "$DB" --sae smollm2-l6-topk-4k-k32
cp "$DB" assets/demo.duckdb
