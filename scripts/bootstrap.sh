#!/usr/bin/env bash
# Create .venv (if missing) and install cagekit with its tested dependency set.
# torch is pinned to the CPU build first so that no CUDA build is pulled in.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev,ray]"
