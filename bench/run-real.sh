#!/bin/sh
# The published sizes (bench/README.md, "Real sizes"), best of 2 (of 3 at 64 px):
# guided-diffusion's 256 px ImageNet model and classifier, its 512 px
# model, ImageNet-64; fp32 engine against PyTorch fp32 and autocast bf16
# (time per forward at batch 1, peak RSS), an end-to-end 25-step DDIM
# 256x256 class-conditional image as the CLI makes it (load included),
# and `diffuse forward` as a whole process against PyTorch's forward.
#
#   bench/run-real.sh [BUILD_DIR]
#
# Environment: CONFIGS (default "imagenet64 imagenet256 imagenet512"),
# THREADS (2), BENCH_DIR (/tmp/diffuse-bench: model files are made there
# once, 1.2 / 2.2 / 2.2 GB), WRAP (e.g. "chrt -f 1"), E2E (1: the
# 25-step image, about 4 minutes in fp32 on 2 cores; 0 skips it),
# E2E_PRECISIONS ("fp32 bf16").
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
configs=${CONFIGS:-imagenet64 imagenet256 imagenet512}
threads=${THREADS:-2}
dir=${BENCH_DIR:-/tmp/diffuse-bench}
wrap=${WRAP:-}
e2e=${E2E:-1}
py=/usr/bin/python3
rss() { sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$1" | awk '{printf "%.0f MiB", $1 / 1024}'; }
wall() { sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$1"; }

for cfg in $configs; do
  d=$dir/$cfg
  [ -f "$d/model.safetensors" ] || $py "$here/torch_forward.py" make "$cfg" "$d"
  for b in 1 2; do
    [ "$cfg" = imagenet64 ] || [ "$b" = 1 ] || continue
    # best of 2 at the big sizes: the first pass of a process also makes
    # the bf16 weights and oneDNN's kernels (the e2e figure counts them)
    r=2; [ "$cfg" = imagenet64 ] && r=3
    echo "$cfg batch $b: $(OPENBLAS_NUM_THREADS=$threads $wrap "$build/bench/bench-forward" "$d" \
      --batch "$b" --threads "$threads" --repeat $r --out "$d/engine-$b.npy")"
    echo "$cfg batch $b: $(OPENBLAS_NUM_THREADS=$threads $wrap "$build/bench/bench-forward" "$d" \
      --batch "$b" --threads "$threads" --repeat $r --precision bf16 --out "$d/engine-bf16-$b.npy" 2>&1)"
    echo "$cfg batch $b: $(OPENBLAS_NUM_THREADS=1 $wrap $py "$here/torch_forward.py" time "$d" \
      --batch "$b" --threads "$threads" --repeat $r --out "$d/torch-$b.npy")"
    echo "$cfg batch $b: $(OPENBLAS_NUM_THREADS=1 $wrap $py "$here/torch_forward.py" time "$d" \
      --batch "$b" --threads "$threads" --repeat $r --bf16 --out "$d/torch-bf16-$b.npy")"
    $py - "$d" "$b" <<'PYEOF'
import sys
import numpy as np
d, b = sys.argv[1:3]
e = np.load("%s/engine-%s.npy" % (d, b))
t = np.load("%s/torch-%s.npy" % (d, b))
h = np.load("%s/torch-bf16-%s.npy" % (d, b))
m = np.abs(t).max()
try:
    eb = "%.3g" % (np.abs(np.load("%s/engine-bf16-%s.npy" % (d, b)) - t).max() / m)
except OSError:
    eb = "-"
print("  max |x - torch fp32| / max |out|: engine fp32 %.3g, engine bf16 %s, "
      "torch bf16 %.3g" % (np.abs(e - t).max() / m, eb, np.abs(h - t).max() / m))
PYEOF
  done
  if [ "$cfg" = imagenet64 ]; then
    # diffuse forward as a whole process (load included), batch 2
    for i in 1 2 3; do
      OPENBLAS_NUM_THREADS=$threads /usr/bin/time -v -o "$d/time.txt" $wrap \
        "$build/cli/diffuse" forward -m "$d/model.safetensors" -i "$d/x-2.npy" \
        -T "$d/t-2.npy" -c "$d/y-2.npy" -t "$threads" --precision fp32 \
        -o "$d/cli-2.npy"
      echo "$cfg diffuse forward batch 2 (whole process): $(wall "$d/time.txt"), peak RSS $(rss "$d/time.txt")"
    done
  fi
done

case " $configs " in *" imagenet256 "*)
  [ -f "$dir/clf-imagenet256.safetensors" ] || $py "$here/classifier_model.py" "$dir"
  OPENBLAS_NUM_THREADS=$threads $wrap "$build/bench/bench-classifier" \
    "$dir/clf-imagenet256.safetensors" --repeat 2 2>&1 | tail -4 | sed 's/^/classifier256: /'
  OPENBLAS_NUM_THREADS=1 $wrap $py "$here/classifier_model.py" "$dir" --torch | sed 's/^/torch classifier: /'
  if [ "$e2e" = 1 ]; then
    for p in ${E2E_PRECISIONS:-fp32 bf16}; do
      OPENBLAS_NUM_THREADS=$threads /usr/bin/time -v -o "$dir/e2e-time.txt" $wrap \
        "$build/cli/diffuse" sample -m "$dir/imagenet256/model.safetensors" -c 7 \
        --sampler ddim --steps 25 --seed 1 -t "$threads" --precision "$p" -q \
        -o "$dir/e2e-$p.png"
      echo "e2e 25-step DDIM 256x256 class-conditional, $p (diffuse sample, load included): $(wall "$dir/e2e-time.txt"), peak RSS $(rss "$dir/e2e-time.txt")"
    done
  fi
  ;;
esac
