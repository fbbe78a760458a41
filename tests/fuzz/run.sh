#!/bin/sh
# Runs every libFuzzer target built by tests/fuzz/build.sh over its seeds
# and regressions, one after the other:
#   tests/fuzz/run.sh OUTDIR [LIBFUZZER OPTIONS...]
# e.g. a CI smoke run: tests/fuzz/run.sh OUTDIR -runs=20000
#      a long run:     tests/fuzz/run.sh OUTDIR -runs=1000000
# Each target fuzzes a fresh corpus under OUTDIR/corpus-NAME; a crash
# leaves crash-* in OUTDIR (copy it to the target's regress folder) and
# makes this script fail.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: run.sh OUTDIR [LIBFUZZER OPTIONS...]}
shift
f=$src/tests/fuzz
for t in safetensors png npy preset respacing; do
  case $t in
    safetensors) corpora="$f/seeds $f/regress"; extra="-dict=$f/safetensors.dict -max_len=1000000" ;;
    png) corpora="$src/tests/data/images $f/png/regress"; extra="-max_len=65536" ;;
    npy) corpora="$src/tests/data/images/npy $f/npy/regress"; extra="-max_len=4096" ;;
    preset) corpora="$src/presets $f/preset/regress"; extra="-max_len=4096" ;;
    respacing) corpora="$f/respacing/seeds $f/respacing/regress"; extra="-max_len=256" ;;
  esac
  mkdir -p "$out/corpus-$t"
  echo "== fuzz-$t"
  # shellcheck disable=SC2086
  (cd "$out" && ./fuzz-$t $extra -print_final_stats=1 "$@" "corpus-$t" $corpora) \
    2>"$out/fuzz-$t.log" || { tail -40 "$out/fuzz-$t.log"; exit 1; }
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$out/fuzz-$t.log" || true
done
