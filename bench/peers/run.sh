#!/usr/bin/env bash
# CPU peer benchmark (see bench/peers/README.md). From the repository root:
#   bash bench/peers/run.sh [--rounds N] [--batch-sizes 64 256] [--data ROOT] [--only FRAMEWORK ...]
# 1. creates/updates .venv-peers (pip: torch, torchvision, trainlab -e ., lightning, keras, fastai, skorch,
#    pytorch-ignite; a peer that fails to install is reported in the table, not fatal)
# 2. runs bench/peers/bench.py in it: writes bench/peers/results.json and bench/peers/table.md
# MNIST: --data ROOT or $TRAINLAB_MNIST_ROOT, default ../shared/data (ROOT/MNIST/raw in torchvision's layout).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash bench/peers/install.sh
export PEERS_COMMAND="bash bench/peers/run.sh${*:+ $*}"
exec "${PEERS_VENV:-$ROOT/.venv-peers}/bin/python" bench/peers/bench.py "$@"
