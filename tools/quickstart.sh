#!/bin/bash
# From a fresh Debian 12 machine to a first generated image:
#   installs the build dependencies (apt-get), builds into build/, and runs
#   `diffuse sample` with the shipped Fashion-MNIST model (or, if it is not
#   there yet, a small test model), writing first.png in the repository root.
# Usage: tools/quickstart.sh        (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  build-essential meson ninja-build pkg-config \
  libglib2.0-dev libjson-glib-dev libpng-dev libopenblas-dev

[ -f build/build.ninja ] || meson setup build
ninja -C build

diffuse=build/cli/diffuse
if [ -f models/fashion.safetensors ]; then
  model=models/fashion.safetensors
  class=7           # Fashion-MNIST label 7: sneaker
else
  echo "quickstart: models/fashion.safetensors not found; using a small" \
       "random-weight test model (the image will be noise-like)" >&2
  model=tests/data/golden/forward-grey-cond.safetensors
  class=cross
fi

"$diffuse" info "$model"
# guidance needs a null class; without one, plain 50-step DDIM
if "$diffuse" info "$model" | grep -q '^null_class: [0-9]'; then
  preset=balanced
else
  preset=draft
fi
"$diffuse" sample --model "$model" --class "$class" --preset "$preset" \
  --steps 50 --seed 1 --out first.png
echo "quickstart: wrote $(pwd)/first.png"
