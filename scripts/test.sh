#!/usr/bin/env bash
# Install everything on a fresh machine, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m pytest -q "$@"
