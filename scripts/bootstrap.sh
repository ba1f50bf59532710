#!/usr/bin/env bash
# Create .venv (if missing) and install cagekit with its tested dependency set.
# torch 2.13.0 is installed first, on its own, so that nothing else asks pip for a newer one. On this
# project's machines pip takes its CPU build from a wheel on local disk; from PyPI alone Linux gets a
# multi-GB CUDA build, so elsewhere set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the CPU one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev,ray]"
