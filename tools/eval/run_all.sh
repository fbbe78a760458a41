#!/bin/sh
# Full evaluation of the shipped models through the C engine: classifiers
# (trained once, then kept in tools/eval/classifiers/), then every sweep.
#   tools/eval/run_all.sh [N_MAIN] [N_SWEEP] [DIFFUSE]
# N_MAIN samples per class for fashion's two target settings (DDIM 50,
# w = 0 and w = 1: models/eval/fashion-target-w0.json, -w1.json) and the
# same with eta = 1 (-w0-eta1.json, -w1-eta1.json), merged into
# fashion-progress.md by tools/eval/progress.py; N_SWEEP
# per class for every sweep (guidance, steps x eta, DDPM variance) and
# the sample grids.  Emoji's held-out split has only 8 images in its
# smallest class, so its sweeps use min(N_SWEEP, 8) per class.
# Two lanes run in parallel (one per core, one OpenBLAS thread each):
#   lane 1: fashion targets at eta 0, guidance sweep + grid, w = 1 at
#           eta 1; emoji guidance sweep and both grids;
#   lane 2: fashion w = 0 at eta 1, steps x eta + variance; emoji
#           variance and steps x eta.
# Results: models/eval/<data>-*.md, *.png, <data>-results.json.
set -e
cd "$(dirname "$0")/../.."
N_MAIN=${1:-50}
N_SWEEP=${2:-20}
DIFFUSE=${3:-}
if [ -z "$DIFFUSE" ]; then
  for d in build-cli/cli/diffuse build/cli/diffuse build-train/cli/diffuse; do
    [ -x "$d" ] && DIFFUSE=$d && break
  done
fi
[ -n "$DIFFUSE" ] || { echo "run_all.sh: no diffuse binary; build one first" >&2; exit 1; }

min8() { [ "$1" -lt 8 ] && echo "$1" || echo 8; }

prepare() {
  [ -f "models/$1.safetensors" ] || return 1
  /usr/bin/python3 tools/train/prepare_$1.py >/dev/null
  [ -f "tools/eval/classifiers/$1.safetensors" ] || \
    nice -n 19 /usr/bin/python3 tools/eval/train_classifier.py "$1"
}

sweep() {  # data n only
  nice -n 19 /usr/bin/python3 tools/eval/sweeps.py --model "models/$1.safetensors" \
    --data "$1" --n-per-class "$2" --only "$3" --diffuse "$DIFFUSE" --threads 1
}

have_fashion=0; have_emoji=0
prepare fashion && have_fashion=1
prepare emoji && have_emoji=1

target() {  # w eta: models/eval/fashion-target-w<w>[-eta<eta>].json
  suffix=""; [ "$2" = 0 ] || suffix="-eta$2"
  nice -n 19 /usr/bin/python3 tools/eval/evaluate.py --model models/fashion.safetensors \
    --data fashion --n-per-class "$N_MAIN" --steps 50 --eta "$2" --guidance "$1" \
    --diffuse "$DIFFUSE" --threads 1 --json "models/eval/fashion-target-w$1$suffix.json"
}

lane1() {
  if [ $have_fashion = 1 ]; then
    target 0 0 && target 1 0 && sweep fashion "$N_SWEEP" guidance,grid && \
      target 1 1 || return 1
  fi
  if [ $have_emoji = 1 ]; then
    sweep emoji "$(min8 "$N_SWEEP")" guidance,grid,grid_eta1 || return 1
  fi
}
lane2() {
  if [ $have_fashion = 1 ]; then
    target 0 1 && sweep fashion "$N_SWEEP" steps_eta,variance || return 1
  fi
  if [ $have_emoji = 1 ]; then
    sweep emoji "$(min8 "$N_SWEEP")" variance,steps_eta || return 1
  fi
}
lane1 > models/eval/run-lane1.log 2>&1 &
p1=$!
lane2 > models/eval/run-lane2.log 2>&1 &
p2=$!
s=0
wait $p1 || s=1
wait $p2 || s=1
if [ $have_fashion = 1 ]; then
  /usr/bin/python3 tools/eval/progress.py --data fashion models/eval/fashion-target-w*.json || s=1
fi
cat models/eval/run-lane1.log models/eval/run-lane2.log
exit $s
