#!/bin/sh
# Full evaluation of the shipped models through the C engine: classifiers
# (trained once, then kept in tools/eval/classifiers/), then every sweep.
#   tools/eval/run_all.sh [N_PER_CLASS] [DIFFUSE]
# Results: models/eval/<data>-*.md, *.png, <data>-results.json.
# Runs under nice -n 19; about 1 CPU-hour per model at N_PER_CLASS=100.
set -e
cd "$(dirname "$0")/../.."
N=${1:-100}
DIFFUSE=${2:-}
if [ -z "$DIFFUSE" ]; then
  for d in build-cli/tools/diffuse build/tools/diffuse build-train/tools/diffuse; do
    [ -x "$d" ] && DIFFUSE=$d && break
  done
fi
[ -n "$DIFFUSE" ] || { echo "run_all.sh: no diffuse binary; build one first" >&2; exit 1; }
for data in fashion emoji; do
  [ -f "models/$data.safetensors" ] || continue
  /usr/bin/python3 tools/train/prepare_$data.py >/dev/null
  [ -f "tools/eval/classifiers/$data.safetensors" ] || \
    nice -n 19 /usr/bin/python3 tools/eval/train_classifier.py "$data"
  n=$N
  # emoji's held-out split is small (355 images, 8 in its smallest class):
  # sample as many per class as it holds; the floor's second real set then
  # comes from the training split (the tables say so).
  [ "$data" = emoji ] && n=test
  nice -n 19 /usr/bin/python3 tools/eval/sweeps.py --model "models/$data.safetensors" \
    --data "$data" --n-per-class "$n" --diffuse "$DIFFUSE" --threads 1
done
