#!/usr/bin/env bash
# Install mixkit and everything its harness, tests and benchmark use, on a fresh machine.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

# PyTorch with a matching torchvision (torchvision's loaders and the peers need both).
if ! python -c "import torch, torchvision" >/dev/null 2>&1; then
  python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
fi
python -m pip install --quiet -e ".[harness,peers,test,docs]"

# Fashion-MNIST, offline, from Debian's package (used by the main job; tests make their own data).
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
      || echo "setup: could not install dataset-fashion-mnist; the digits dataset still works" >&2
  else
    echo "setup: install Fashion-MNIST with 'apt-get install dataset-fashion-mnist' (as root)" >&2
  fi
fi
