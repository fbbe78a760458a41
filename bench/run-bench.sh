#!/bin/sh
# UNet forward: libdiffuse against PyTorch on the same random weights and
# inputs, at batch 1 and 2, in one run (see bench/README.md).
#
#   bench/run-bench.sh [BUILD_DIR]
#
# Environment: CONFIGS (default "small32 imagenet64", or JSON config
# files), THREADS (2), REPEAT (3), BENCH_DIR (/tmp/diffuse-bench; model
# files are made there once and reused: ImageNet-64 takes 1.2 GB).
# The engine runs with OPENBLAS_NUM_THREADS=THREADS, torch with
# torch.set_num_threads (THREADS) and OPENBLAS_NUM_THREADS=1.
# WRAP prefixes both commands, e.g. WRAP="chrt -f 1" (root) to keep other
# jobs on a shared machine from distorting the timings.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
configs=${CONFIGS:-small32 imagenet64}
threads=${THREADS:-2}
repeat=${REPEAT:-3}
dir=${BENCH_DIR:-/tmp/diffuse-bench}
wrap=${WRAP:-}
bench=$build/bench/bench-forward

if [ ! -x "$bench" ]; then
  echo "run-bench.sh: $bench not found (build first: ninja -C $build)" >&2
  exit 1
fi

summary=""
for cfg in $configs; do
  name=$(basename "$cfg" .json)
  d=$dir/$name
  if [ ! -f "$d/model.safetensors" ]; then
    /usr/bin/python3 "$here/torch_forward.py" make "$cfg" "$d"
  fi
  for b in 1 2; do
    e=$(OPENBLAS_NUM_THREADS=$threads $wrap "$bench" "$d" --batch "$b" \
          --threads "$threads" --repeat "$repeat" --out "$d/engine-$b.npy")
    echo "$name: $e"
    t=$(OPENBLAS_NUM_THREADS=1 $wrap /usr/bin/python3 "$here/torch_forward.py" time "$d" \
          --batch "$b" --threads "$threads" --repeat "$repeat" --out "$d/torch-$b.npy")
    echo "$name: $t"
    line=$(/usr/bin/python3 - "$d" "$b" "$e" "$t" <<'EOF'
import re, sys
import numpy as np
d, b, e, t = sys.argv[1:5]
best = lambda s: float(re.search(r"best ([0-9.]+) s", s).group(1))
a = np.load("%s/engine-%s.npy" % (d, b))
r = np.load("%s/torch-%s.npy" % (d, b))
print("batch %s: engine %.4f s, torch %.4f s, torch/engine %.2fx, "
      "max |diff| %.3g (max |out| %.3g)"
      % (b, best(e), best(t), best(t) / best(e), np.abs(a - r).max(),
         np.abs(r).max()))
EOF
)
    summary="$summary$name $line
"
  done
done
echo
echo "threads $threads, best of $repeat runs each:"
printf "%s" "$summary"
