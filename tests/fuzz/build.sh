#!/bin/sh
# Builds the libFuzzer targets with clang (Debian clang + libclang-rt-dev):
#   tests/fuzz/build.sh OUTDIR
# then run, e.g. (tests/fuzz/run.sh does all of them):
#   OUTDIR/fuzz-safetensors -dict=tests/fuzz/safetensors.dict -max_len=1000000 \
#     -max_total_time=300 CORPUS_DIR tests/fuzz/seeds tests/fuzz/regress
#   OUTDIR/fuzz-png CORPUS_DIR tests/data/images tests/fuzz/png/regress
# Targets: safetensors, png, npy, preset, respacing (fuzz-NAME.c).  Inputs
# that crash go into tests/fuzz/regress/ or tests/fuzz/NAME/regress/
# (replayed by `meson test`).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
CC=${CC:-clang}
pkgs="glib-2.0 json-glib-1.0 libpng"
# the version meson passes the engine (model-cache.c keys its records on it)
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$src/meson.build" | head -n 1)
[ -n "$version" ] || { echo "build.sh: no version in meson.build" >&2; exit 1; }
blas=$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
flags="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
       -fno-sanitize-recover=undefined -DDIFFUSE_PRESETS_DIR=\"/nonexistent\"
       -DDIFFUSE_VERSION=\"$version\"
       -I$src/engine -I$src/tests $(pkg-config --cflags $pkgs)"
libs="$(pkg-config --libs $pkgs) $blas -lm -lpthread"
# the engine once, instrumented for the fuzzer, then one link per target
mkdir -p "$out/obj"
for f in "$src"/engine/*.c; do
  # shellcheck disable=SC2086
  $CC $flags -fsanitize=fuzzer-no-link -c -o "$out/obj/$(basename "$f" .c).o" "$f"
done
for t in safetensors png npy preset respacing; do
  # shellcheck disable=SC2086
  $CC $flags -fsanitize=fuzzer -o "$out/fuzz-$t" \
    "$src/tests/fuzz/fuzz-$t.c" "$out"/obj/*.o $libs
  echo "built $out/fuzz-$t"
done
# shellcheck disable=SC2086
$CC $flags -o "$out/make-seeds" "$src/tests/fuzz/make-seeds.c" \
  "$src/tests/testutil-safetensors.c" "$out"/obj/*.o $libs
