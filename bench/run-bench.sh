#!/bin/sh
# UNet forward: libdiffuse against PyTorch on the same random weights and
# inputs, at batch 1 and 2, fp32 and bf16 (the engine's --precision bf16,
# torch's bf16 autocast), in one run (see bench/README.md).
#
#   bench/run-bench.sh [BUILD_DIR]
#
# Environment: CONFIGS (default "small32 imagenet64", or JSON config
# files), BATCHES ("1 2"), THREADS (2), REPEAT (3), BENCH_DIR (/tmp/diffuse-bench; model
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
batches=${BATCHES:-1 2}
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
  for b in $batches; do
    # fp32 then bf16, each side in turn: the pairs are measured together
    for p in fp32 bf16; do
      e=$(OPENBLAS_NUM_THREADS=$threads $wrap "$bench" "$d" --batch "$b" \
            --threads "$threads" --repeat "$repeat" --precision $p \
            --out "$d/engine-$p-$b.npy")
      echo "$name: $e"
      tflag=""
      [ $p = bf16 ] && tflag=--bf16
      t=$(OPENBLAS_NUM_THREADS=1 $wrap /usr/bin/python3 "$here/torch_forward.py" time "$d" \
            --batch "$b" --threads "$threads" --repeat "$repeat" $tflag \
            --out "$d/torch-$p-$b.npy")
      echo "$name: $t"
      eval "e_$p=\$e; t_$p=\$t"
    done
    line=$(/usr/bin/python3 - "$d" "$b" "$e_fp32" "$t_fp32" "$e_bf16" "$t_bf16" <<'EOF'
import re, sys
import numpy as np
d, b, e32, t32, e16, t16 = sys.argv[1:7]
best = lambda s: float(re.search(r"best ([0-9.]+) s", s).group(1))
ref = np.load("%s/torch-fp32-%s.npy" % (d, b))
scale = np.abs(ref).max()
diff = lambda who, p: np.abs(np.load("%s/%s-%s-%s.npy" % (d, who, p, b)) - ref).max() / scale
print("batch %s: fp32 engine %.4f s torch %.4f s (torch/engine %.2fx); "
      "bf16 engine %.4f s torch %.4f s (torch/engine %.2fx); "
      "engine fp32/bf16 %.2fx; max |diff| / max |out| vs torch fp32: "
      "engine fp32 %.2g, bf16 %.2g, torch bf16 %.2g"
      % (b, best(e32), best(t32), best(t32) / best(e32), best(e16),
         best(t16), best(t16) / best(e16), best(e32) / best(e16),
         diff("engine", "fp32"), diff("engine", "bf16"), diff("torch", "bf16")))
EOF
)
    summary="$summary$name $line
"
  done
done
echo
echo "threads $threads, best of $repeat runs each:"
printf "%s" "$summary"
