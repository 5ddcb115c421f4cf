#!/usr/bin/env bash
# Create .venv and install spikeroll with its test extras. Torch is pinned to the CPU wheel this
# project's machines carry (an unpinned `torch` would pull a multi-GB CUDA build); on a GPU machine,
# install the torch you want into .venv first and this script leaves it in place.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q "torch==2.13.0"
fi
.venv/bin/pip install -q -e ".[dev]"
