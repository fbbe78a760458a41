#!/bin/bash
# diffuse inpaint end to end, and --tile: kept pixels byte-identical, the
# masked part regenerated, bad masks refused before any work.
#   test-cli-inpaint.sh PATH/TO/diffuse PATH/TO/npy-compare
# Uses the small random-weight golden models (tests/data/golden): the
# pixels they make are noise-like, which is all these checks need.
set -u

DIFFUSE=${1:?usage: test-cli-inpaint.sh DIFFUSE NPY_COMPARE}
COMPARE=${2:?usage: test-cli-inpaint.sh DIFFUSE NPY_COMPARE}
DATA=${DIFFUSE_TEST_DATA:?DIFFUSE_TEST_DATA is not set}
G=$DATA/golden
TMP=$(mktemp -d "${TMPDIR:-/tmp}/diffuse-inpaint-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export XDG_CONFIG_HOME=$TMP/config

failures=0
checks=0
pass () { checks=$((checks + 1)); echo "ok - $1"; }
fail () { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL - $1"; }

run () {
  local name=$1 want=$2
  shift 2
  "$DIFFUSE" "$@" >"$TMP/out" 2>"$TMP/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then pass "$name (exit $got)"; return 0; fi
  fail "$name: exit $got, expected $want; stderr:"
  sed 's/^/    /' "$TMP/err"
  return 1
}

# a refusal: one line "diffuse: ..." naming what is wrong, and no output
expect_error () {
  local name=$1 want=$2 needle=$3
  shift 3
  rm -f "$TMP/never.png"
  run "$name" "$want" "$@" --out "$TMP/never.png" || return
  if [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^diffuse: ' "$TMP/err" &&
     grep -q -- "$needle" "$TMP/err"; then
    pass "$name: $(cat "$TMP/err")"
  else
    fail "$name: expected one line 'diffuse: ...$needle...', got:"
    sed 's/^/    /' "$TMP/err"
  fi
  [ -e "$TMP/never.png" ] && fail "$name: wrote an output anyway"
}

masked_ok () {
  if "$COMPARE" --png-masked "$2" "$3" "$4" >"$TMP/cmp" 2>&1; then
    pass "$1: $(cat "$TMP/cmp")"
  else
    fail "$1:"; sed 's/^/    /' "$TMP/cmp"
  fi
}

mask () { "$COMPARE" --mask-png "$@" || fail "could not write mask $1"; }

M=$G/forward-grey-cond.safetensors       # 16 px, grey, 5 classes + null
A=$G/forward-rgba-sigma.safetensors      # 16 px, RGBA, learned sigma
COMMON=(--steps 4 --seed 7 --quiet)

# inputs: samples of the models themselves, at sizes around the model's
"$DIFFUSE" sample --model "$M" --class 1 "${COMMON[@]}" --out "$TMP/in16.png" &&
"$DIFFUSE" sample --model "$M" --class 2 "${COMMON[@]}" --width 48 --height 32 \
  --out "$TMP/in48.png" &&
"$DIFFUSE" sample --model "$A" "${COMMON[@]}" --out "$TMP/rgba.png" ||
  { echo "FAIL - could not make the inputs"; exit 1; }
# 17 x 17 is no multiple of the model's size step (2): first an inpaint
# of a grey .npy input of that size, then that image as the input
"$COMPARE" --fill "$TMP/grey17.npy" 1,1,17,17 0 &&
"$COMPARE" --mask-png "$TMP/half17.png" 1 17 17 0 0 9 17 &&
"$DIFFUSE" inpaint --model "$M" --input "$TMP/grey17.npy" \
  --mask "$TMP/half17.png" "${COMMON[@]}" --out "$TMP/in17.png" ||
  { echo "FAIL - could not make the 17 px input"; exit 1; }

mask "$TMP/right.png" 1 16 16 8 0 16 16
mask "$TMP/centre.png" 1 16 16 4 4 12 12
mask "$TMP/alpha.png" 2 16 16 8 0 16 16
mask "$TMP/soft.png" 1 16 16 4 4 12 12 128
mask "$TMP/small48.png" 1 32 48 30 10 36 16
mask "$TMP/mid17.png" 1 17 17 6 6 14 14
mask "$TMP/empty.png" 1 16 16 0 0 0 0
mask "$TMP/wrongsize.png" 1 16 20 0 0 8 8

# ---- kept pixels byte-identical, the masked part regenerated -----------
run "inpaint right half" 0 inpaint --model "$M" --input "$TMP/in16.png" \
  --mask "$TMP/right.png" --class 3 "${COMMON[@]}" --out "$TMP/r.png" &&
  masked_ok "right half" "$TMP/r.png" "$TMP/in16.png" "$TMP/right.png"
run "inpaint centre, DDPM, resampling" 0 inpaint --model "$M" \
  --input "$TMP/in16.png" --mask "$TMP/centre.png" --sampler ddpm \
  --resample-count 3 --resample-jump 2 "${COMMON[@]}" --out "$TMP/c.png" &&
  masked_ok "centre with resampling" "$TMP/c.png" "$TMP/in16.png" \
    "$TMP/centre.png"
run "inpaint, alpha mask, guidance, a batch of 2" 0 inpaint --model "$M" \
  --input "$TMP/in16.png" --mask "$TMP/alpha.png" --class 1 --guidance 2 \
  --count 2 "${COMMON[@]}" --out "$TMP/a.png" &&
  for k in 0 1; do
    masked_ok "alpha mask, image $k" "$TMP/a-$k.png" "$TMP/in16.png" \
      "$TMP/right.png"
  done
if cmp -s "$TMP/a-0.png" "$TMP/r.png"; then
  fail "class 1 with guidance gave class 3's pixels"; fi
run "inpaint, soft mask (grey 128)" 0 inpaint --model "$M" \
  --input "$TMP/in16.png" --mask "$TMP/soft.png" "${COMMON[@]}" \
  --out "$TMP/s.png" &&
  masked_ok "soft mask" "$TMP/s.png" "$TMP/in16.png" "$TMP/soft.png"
run "inpaint, strength 0.6" 0 inpaint --model "$M" --input "$TMP/in16.png" \
  --mask "$TMP/right.png" --strength 0.6 "${COMMON[@]}" --out "$TMP/h.png" &&
  masked_ok "strength 0.6" "$TMP/h.png" "$TMP/in16.png" "$TMP/right.png"
run "inpaint RGBA, learned sigma" 0 inpaint --model "$A" \
  --input "$TMP/rgba.png" --mask "$TMP/centre.png" "${COMMON[@]}" \
  --out "$TMP/rgba-out.png" &&
  masked_ok "RGBA" "$TMP/rgba-out.png" "$TMP/rgba.png" "$TMP/centre.png"
# a window inside a larger image: everything outside it stays too
"$DIFFUSE" inpaint --model "$M" --input "$TMP/in48.png" \
  --mask "$TMP/small48.png" --margin 2 --steps 4 --seed 7 \
  --out "$TMP/w.png" >"$TMP/out" 2>"$TMP/err" &&
  pass "inpaint in a 48 x 32 image" || fail "inpaint in a 48 x 32 image"
if grep -q "context window 16 x 16 at (25, 5), sampled at 16 x 16$" \
     "$TMP/err"; then
  pass "the window: the mask's bounds, margin 2, grown to 16 x 16"
else fail "window: $(grep window "$TMP/err")"; fi
masked_ok "48 x 32, window of 16" "$TMP/w.png" "$TMP/in48.png" \
  "$TMP/small48.png"
# a window that is not a multiple of the model's step: sampled scaled
"$DIFFUSE" inpaint --model "$M" --input "$TMP/in17.png" \
  --mask "$TMP/mid17.png" --steps 4 --seed 7 --out "$TMP/m.png" \
  >"$TMP/out" 2>"$TMP/err" && grep -q "17 x 17 at (0, 0), sampled at 16 x 16 (scaled)" "$TMP/err" &&
  pass "a 17 x 17 window is sampled at 16 x 16, scaled" ||
  fail "17 x 17: $(cat "$TMP/err")"
masked_ok "scaled window" "$TMP/m.png" "$TMP/in17.png" "$TMP/mid17.png"
# the same seed and options give the same image
"$DIFFUSE" inpaint --model "$M" --input "$TMP/in16.png" \
  --mask "$TMP/right.png" --class 3 "${COMMON[@]}" --out "$TMP/r2.png" &&
  cmp -s "$TMP/r.png" "$TMP/r2.png" && pass "inpaint is reproducible" ||
  fail "the same inpaint run gave another image"
# a preset's resampling applies to inpaint, and is ignored by sample
mkdir -p "$TMP/config/gimp-diffusion/presets"
printf '[preset]\nname=harmony\nresample-count=2\nresample-jump=2\nsteps=4\n' \
  >"$TMP/config/gimp-diffusion/presets/harmony.preset"
run "sample with a resampling preset" 0 sample --model "$M" --preset harmony \
  --seed 1 --quiet --out "$TMP/p.png"
run "inpaint with a resampling preset" 0 inpaint --model "$M" \
  --preset harmony --input "$TMP/in16.png" --mask "$TMP/right.png" \
  --seed 7 --out "$TMP/p2.png"
grep -q "(8 network evaluations)" "$TMP/err" 2>/dev/null ||
  grep -q "step 6/6" "$TMP/err" && pass "the preset's resampling ran" ||
  fail "the preset's resampling: $(tail -2 "$TMP/err")"

# ---- bad input: a clear error before any work ---------------------------
expect_error "no --mask" 2 "--mask is required" inpaint --model "$M" \
  --input "$TMP/in16.png"
expect_error "no --input" 2 "--input is required" inpaint --model "$M" \
  --mask "$TMP/right.png"
expect_error "empty mask" 1 "empty" inpaint --model "$M" \
  --input "$TMP/in16.png" --mask "$TMP/empty.png"
expect_error "mask of another size" 1 "the input's size" inpaint \
  --model "$M" --input "$TMP/in16.png" --mask "$TMP/wrongsize.png"
expect_error "missing mask file" 1 "cannot open" inpaint --model "$M" \
  --input "$TMP/in16.png" --mask "$TMP/nothere.png"
expect_error "mask not a PNG" 1 "mask" inpaint --model "$M" \
  --input "$TMP/in16.png" --mask "$M"
expect_error "negative margin" 2 "margin" inpaint --model "$M" \
  --input "$TMP/in16.png" --mask "$TMP/right.png" --margin -1
expect_error "jump past the steps" 1 "resample-jump" inpaint --model "$M" \
  --input "$TMP/in16.png" --mask "$TMP/right.png" --steps 4 \
  --resample-count 2 --resample-jump 9
expect_error "resample-count 0" 1 "resample-count" inpaint --model "$M" \
  --input "$TMP/in16.png" --mask "$TMP/right.png" --resample-count 0
expect_error "no --width for inpaint" 2 "width" inpaint --model "$M" \
  --input "$TMP/in16.png" --mask "$TMP/right.png" --width 32
expect_error "sample has no --resample-count" 2 "resample-count" sample \
  --model "$M" --resample-count 2

# ---- --tile ------------------------------------------------------------
run "sample --tile both" 0 sample --model "$M" --tile both "${COMMON[@]}" \
  --out "$TMP/t.png"
run "sample --tile x, 32 x 16" 0 sample --model "$M" --tile x --width 32 \
  "${COMMON[@]}" --out "$TMP/tx.png"
if cmp -s "$TMP/t.png" "$TMP/in16.png"; then
  fail "--tile changed nothing"; fi
run "sample --tile none = no option" 0 sample --model "$M" --tile none \
  --class 1 "${COMMON[@]}" --out "$TMP/t0.png" &&
  cmp -s "$TMP/t0.png" "$TMP/in16.png" && pass "--tile none is the default" ||
  fail "--tile none differs from the default"
expect_error "--tile diagonal" 2 "tile" sample --model "$M" --tile diagonal

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
