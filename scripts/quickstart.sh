#!/usr/bin/env bash
# Install everything on a fresh machine, then train on the embedded default dataset (offline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/spikeroll train --out runs/quickstart --overwrite "$@"
