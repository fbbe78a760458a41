#!/bin/sh
# The GIMP batch tests, run INSIDE the Debian 13 root with the source at
# /src (tests/gimp/run-tests.sh sets that up).  Builds the plug-in,
# installs it into a throw-away GIMP profile, runs the Script-Fu files in
# tests/gimp/scm/ with gimp-console-3.0, and checks the exported PNGs
# against the engine called directly (diffuse-gimp-ref) with
# diffuse-png-check.
set -u

SRC=/src
BUILD=${BUILD:-$SRC/build-gimproot}
T=/tmp/gimp-diffusion-tests
PROFILE=$T/profile
IN=$T/in
OUT=$T/out
GOLDEN=$SRC/tests/data/golden
PASS=0
FAIL=0

say () { printf '%s\n' "$*"; }
pass () { PASS=$((PASS + 1)); say "PASS: $*"; }
fail () { FAIL=$((FAIL + 1)); say "FAIL: $*"; }

# ---- build and install ----------------------------------------------------
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" "$SRC" -Dplugin=enabled >/dev/null || { say "FAIL: meson setup"; exit 1; }
fi
ninja -C "$BUILD" plugin/gimp-diffusion plugin/diffuse-gimp-ref plugin/diffuse-png-check cli/diffuse \
  tests/npy-compare \
  >"$T.build.log" 2>&1 || { cat "$T.build.log"; say "FAIL: build"; exit 1; }
REF=$BUILD/plugin/diffuse-gimp-ref
CHECK=$BUILD/plugin/diffuse-png-check
DIFFUSE=$BUILD/cli/diffuse
COMPARE=$BUILD/tests/npy-compare

rm -rf "$T"
mkdir -p "$PROFILE/plug-ins/gimp-diffusion" "$IN" "$OUT"
install -m 755 "$BUILD/plugin/gimp-diffusion" "$PROFILE/plug-ins/gimp-diffusion/"
# the user's preset folder, shared by the CLI and the plug-in
# ($XDG_CONFIG_HOME/gimp-diffusion/presets; the variable overrides it)
export DIFFUSE_USER_PRESETS_DIR=$T/user-presets
mkdir -p "$DIFFUSE_USER_PRESETS_DIR"
printf '[preset]\nname=cli-made\nsampler=ddim\nsteps=10\neta=1\n' \
  >"$DIFFUSE_USER_PRESETS_DIR/cli-made.preset"

# ---- inputs ---------------------------------------------------------------
magick -size 16x16 gradient:'#d03020-#2040c0' -rotate 30 -gravity center -extent 16x16 \
  +repage -type TrueColor PNG24:"$IN/in-rgb.png"
magick -size 16x16 gradient:'#d03020-#2040c0' \( -size 16x16 gradient:white-'#202020' -rotate 90 \) \
  -alpha off -compose CopyOpacity -composite PNG32:"$IN/in-rgba.png"
magick -size 16x16 radial-gradient:white-black -colorspace Gray -depth 8 \
  -define png:color-type=0 PNG:"$IN/in-grey.png"
magick -size 40x24 gradient:'#30a050-#a03050' -type TrueColor PNG24:"$IN/in-rgb-40x24.png"
for f in in-rgb in-rgba in-grey in-rgb-40x24; do
  say "input $f: $($CHECK info "$IN/$f.png")"
done

# ---- run Script-Fu --------------------------------------------------------
run_scm () {
  name=$1
  log=$OUT/$name.log
  GIMP3_DIRECTORY=$PROFILE timeout 300 gimp-console-3.0 -i --quit \
    --batch-interpreter=plug-in-script-fu-eval \
    -b "(begin (load \"$SRC/tests/gimp/scm/lib.scm\") (load \"$SRC/tests/gimp/scm/$name.scm\"))" \
    >"$log" 2>&1
  rc=$?
  grep -E "ok: |CHECK FAILED|Error" "$log" | sed "s/^/  [$name] /"
  if [ $rc -eq 0 ] && ! grep -q "execution error\|CHECK FAILED" "$log"; then
    pass "script $name.scm"
  else
    fail "script $name.scm (rc $rc, log $log)"
    tail -20 "$log"
  fi
}

# same / differ: TOL in 0..255 levels (1 allows babl's and libpng's
# rounding of the same float to differ by one level)
same () {
  what=$1; shift
  if r=$($CHECK same "$@" 2>&1); then pass "$what ($r)"; else fail "$what ($r)"; fi
}
differ () {
  what=$1; shift
  if r=$($CHECK differ "$@" 2>&1); then pass "$what ($r)"; else fail "$what ($r)"; fi
}
ref () {
  out=$1; shift
  "$REF" "$@" "$out" >/dev/null 2>"$out.err" 2>&1 || {
    say "reference failed: $*"; cat "$out.err"; }
}
ref_model () { m=$1; out=$2; shift 2; "$REF" "$GOLDEN/forward-$m.safetensors" "$out" "$@" || say "reference failed: $m $*"; }
size_is () {
  what=$1; file=$2; want=$3
  got=$($CHECK info "$file" 2>&1)
  if [ "$got" = "$want" ]; then pass "$what ($got)"; else fail "$what (got '$got', want '$want')"; fi
}

for s in generate img2img sweep errors inpaint; do
  run_scm $s
done
# classifier guidance: the shipped models by name through the model
# folders ($DIFFUSE_MODELS_PATH is one of them)
DIFFUSE_MODELS_PATH=$SRC/models
export DIFFUSE_MODELS_PATH
run_scm classifier
unset DIFFUSE_MODELS_PATH

R=$T/ref
mkdir -p "$R"

# ---- generate --------------------------------------------------------------
ref_model grey-cond "$R/gen-grey-0.png" --class cross --steps 6 --seed 7 --count 2 --index 0
ref_model grey-cond "$R/gen-grey-1.png" --class cross --steps 6 --seed 7 --count 2 --index 1
same "generate grey model, sample 1 of 2 = engine" "$OUT/gen-grey-0.png" "$R/gen-grey-0.png" 1 1
same "generate grey model, sample 2 of 2 = engine" "$OUT/gen-grey-1.png" "$R/gen-grey-1.png" 1 1
differ "the two variations differ" "$OUT/gen-grey-0.png" "$OUT/gen-grey-1.png" 2 1
size_is "grey model in an RGB image gives an RGB layer" "$OUT/gen-grey-0.png" "16 16 3"

ref_model rgba-sigma "$R/gen-rgba.png" --steps 4 --seed 11 --sampler ddpm
same "generate RGBA model = engine (with alpha)" "$OUT/gen-rgba.png" "$R/gen-rgba.png" 1 4
size_is "RGBA model gives an RGBA layer" "$OUT/gen-rgba.png" "16 16 4"

# ga-3level has no null class: the default guidance (2) runs as 0 there,
# eta is the default 1 (issue 13)
ref_model ga-3level "$R/gen-ga.png" --class 1 --steps 4 --seed 3 --eta 1 --guidance 0
same "generate grey+alpha model in a grey image = engine (defaults: w 0 without a null class)" \
  "$OUT/gen-ga.png" "$R/gen-ga.png" 1 2
size_is "grey+alpha model gives a grey+alpha layer" "$OUT/gen-ga.png" "32 32 2"

ref_model grey-cond "$R/gen-native.png" --class ring --steps 5 --seed 2 --size 24x40
same "40x24 layer, size-mode auto: sampled fully convolutionally = engine at 24x40" "$OUT/gen-native.png" "$R/gen-native.png" 1 1
ref_model grey-cond "$R/gen-scaled.png" --class ring --steps 5 --seed 2 --size 16x26 --out-size 24x40
same "40x24 layer, default size mode (model): 26x16 sample scaled = engine" "$OUT/gen-scaled.png" "$R/gen-scaled.png" 1 1

ref_model grey-cond "$R/gen-preset.png" --class square --steps 10 --seed 4 --sampler ddim --eta 1 \
  --guidance 0
same "preset draft overrides steps/eta/sampler/guidance" "$OUT/gen-preset.png" "$R/gen-preset.png" 1 1
# cli-made sets no guidance: the default, 2 (grey-cond has a null class)
ref_model grey-cond "$R/gen-userpreset.png" --class square --steps 10 --seed 4 --sampler ddim \
  --eta 1 --guidance 2
same "a preset from the folder the CLI uses (cli-made) applies" "$OUT/gen-userpreset.png" \
  "$R/gen-userpreset.png" 1 1

# the procedure's defaults are the best measured settings, the preset
# balanced: DDIM, 50 steps, eta 1, w 2 (issue 13)
ref_model grey-cond "$R/gen-default.png" --class ring --steps 50 --sampler ddim --eta 1 \
  --guidance 2 --seed 21
same "generate with the defaults = engine at DDIM 50, eta 1, w 2" "$OUT/gen-default.png" \
  "$R/gen-default.png" 1 1
same "generate with the defaults = generate with the preset balanced" "$OUT/gen-default.png" \
  "$OUT/gen-balanced.png" 0 1
ref_model grey-cond "$R/gen-w0.png" --class ring --steps 50 --sampler ddim --eta 1 \
  --guidance 0 --seed 21
same "an explicit guidance 0 stays 0 = engine at w 0" "$OUT/gen-w0.png" "$R/gen-w0.png" 1 1
differ "guidance 0 differs from the default w 2" "$OUT/gen-w0.png" "$OUT/gen-default.png" 1 1

# ---- img2img ----------------------------------------------------------------
ref_model rgb-uncond "$R/i2i-rgb.png" --init "$IN/in-rgb.png" --strength 0.5 --steps 10 --seed 3
same "img2img RGB strength 0.5 = engine" "$OUT/i2i-rgb.png" "$R/i2i-rgb.png" 1 3
differ "img2img changed the layer" "$OUT/i2i-rgb.png" "$IN/in-rgb.png" 1 3
d1=$($CHECK diff "$OUT/i2i-rgb-s01.png" "$IN/in-rgb.png" 3 | awk '{print $4}')
d9=$($CHECK diff "$OUT/i2i-rgb-s09.png" "$IN/in-rgb.png" 3 | awk '{print $4}')
if awk "BEGIN { exit !($d1 < $d9) }"; then
  pass "strength 0.1 stays closer to the input than 0.9 (mean diff $d1 < $d9)"
else
  fail "strength 0.1 vs 0.9: mean diff $d1 vs $d9"
fi

same "selection: rows above it unchanged" "$OUT/i2i-sel.png" "$IN/in-rgb.png" 0 3 0 0 16 4
same "selection: columns left of it unchanged" "$OUT/i2i-sel.png" "$IN/in-rgb.png" 0 3 0 0 4 16
differ "selection: inside changed" "$OUT/i2i-sel.png" "$IN/in-rgb.png" 1 3 4 4 8 8
magick "$IN/in-rgb.png" -crop 8x8+4+4 +repage PNG24:"$R/sel-in.png"
magick "$OUT/i2i-sel.png" -crop 8x8+4+4 +repage PNG24:"$R/sel-out.png"
# 8x8 is smaller than the 16 px model: sampled at 16x16, scaled both ways
ref_model rgb-uncond "$R/i2i-sel.png" --init "$R/sel-in.png" --strength 0.6 --steps 10 --seed 5 \
  --size 16x16 --out-size 8x8
same "selection: its 8x8 bounds = engine img2img at 16x16, scaled" "$R/sel-out.png" "$R/i2i-sel.png" 1 3

magick "$IN/in-rgba.png" -alpha extract PNG8:"$R/rgba-in-alpha.png"
magick "$OUT/i2i-rgba.png" -alpha extract PNG8:"$R/rgba-out-alpha.png"
same "RGBA layer keeps its alpha" "$R/rgba-out-alpha.png" "$R/rgba-in-alpha.png" 0 1
differ "RGBA layer colour changed" "$OUT/i2i-rgba.png" "$IN/in-rgba.png" 1 3
size_is "RGBA layer stays RGBA" "$OUT/i2i-rgba.png" "16 16 4"

ref_model grey-cond "$R/i2i-grey.png" --init "$IN/in-grey.png" --class square --guidance 1.5 \
  --strength 0.7 --steps 8 --seed 8
same "img2img grey image with guidance = engine" "$OUT/i2i-grey.png" "$R/i2i-grey.png" 1 1
size_is "grey image stays grey" "$OUT/i2i-grey.png" "16 16 1"

size_is "RGBA model on an RGB layer adds alpha" "$OUT/i2i-rgb-rgbamodel.png" "16 16 4"
ref_model rgba-sigma "$R/i2i-rgbamodel.png" --init "$IN/in-rgb.png" --strength 0.5 --steps 6 --seed 3
same "RGBA model img2img = engine" "$OUT/i2i-rgb-rgbamodel.png" "$R/i2i-rgbamodel.png" 1 4

ref_model rgb-uncond "$R/i2i-scaled.png" --init "$IN/in-rgb-40x24.png" --strength 0.5 --steps 10 \
  --seed 3 --size 16x26 --out-size 24x40
same "40x24 img2img at model size, scaled both ways = engine" "$OUT/i2i-scaled.png" "$R/i2i-scaled.png" 1 3

# ---- sweep -------------------------------------------------------------------
# cells: 16 px x 8 = 128, margin 8, label 22: 3 * 136 + 8 = 416 wide, 128 + 22 + 16 = 166 high
size_is "sweep sheet size" "$OUT/sweep.png" "416 166 3"
i=0
for w in 0 1 3; do
  x=$((8 + i * 136))
  magick "$OUT/sweep.png" -crop 128x128+$x+8 +repage -sample 16x16 PNG24:"$R/sweep-cell-$w.png"
  ref_model grey-cond "$R/sweep-$w.png" --class ring --seed 5 --steps 5 --guidance $w
  same "sweep cell w=$w = engine with guidance $w" "$R/sweep-cell-$w.png" "$R/sweep-$w.png" 1 1
  i=$((i + 1))
done
differ "sweep: guidance changes the sample" "$R/sweep-0.png" "$R/sweep-3.png" 1 1
# as-layers: one 32x32 layer per value, sampled at 16 px and scaled
for w in 0 1 3; do
  ref_model grey-cond "$R/sweep-layer-$w.png" --class ring --seed 5 --steps 5 --guidance $w \
    --out-size 32x32
  same "sweep as layers: layer 'w = $w' = engine with guidance $w, scaled" \
    "$OUT/sweep-layer-$w.png" "$R/sweep-layer-$w.png" 1 1
done
if $CHECK diff "$OUT/sweep.png" "$OUT/sweep.png" >/dev/null; then
  # labels: dark pixels in the label strip under each cell
  dark=$(magick "$OUT/sweep.png" -crop 416x22+0+136 +repage -threshold 50% -negate \
         -format "%[fx:mean*w*h]" info:)
  if awk "BEGIN { exit !($dark > 20) }"; then pass "labels drawn under the cells ($dark dark pixels)";
  else fail "labels: only $dark dark pixels in the label strip"; fi
fi

# ---- inpaint and seamless tiles -------------------------------------------
masked () {
  what=$1; shift
  if r=$($COMPARE --png-masked "$@" 2>&1); then pass "$what ($r)"; else fail "$what ($r)"; fi
}
"$DIFFUSE" inpaint --model "$GOLDEN/forward-grey-cond.safetensors" --input "$IN/in-grey.png" \
  --mask "$OUT/inp-grey-mask.png" --class square --steps 6 --seed 7 --precision fp32 \
  --quiet --out "$R/inp-grey.png" || say "diffuse inpaint failed"
same "inpaint selection = diffuse inpaint with the selection as mask" \
  "$OUT/inp-grey.png" "$R/inp-grey.png" 1 1
masked "inpaint: unselected pixels byte-identical, the selection regenerated" \
  "$OUT/inp-grey.png" "$IN/in-grey.png" "$OUT/inp-grey-mask.png"
masked "inpaint, feathered selection: pixels outside it byte-identical, inside changed" \
  "$OUT/inp-feather.png" "$IN/in-rgb.png" "$OUT/inp-feather-mask.png"
same "inpaint without a selection leaves the image untouched" "$OUT/inp-noselection.png" \
  "$IN/in-rgb.png" 0 3
"$DIFFUSE" sample --model "$GOLDEN/forward-grey-cond.safetensors" --class cross --steps 5 \
  --seed 3 --tile both --precision fp32 --quiet --out "$R/gen-tile.png" || say "diffuse sample failed"
same "generate with tile both = diffuse sample --tile both" "$OUT/gen-tile.png" "$R/gen-tile.png" 1 1
"$DIFFUSE" sample --model "$GOLDEN/forward-grey-cond.safetensors" --class cross --steps 5 \
  --seed 3 --precision fp32 --quiet --out "$R/gen-notile.png"
differ "tile both changes the sample" "$OUT/gen-tile.png" "$R/gen-notile.png" 1 1
if grep -q "select the part to regenerate" "$OUT/inpaint.log"; then
  pass "inpaint without a selection says to select first"
else fail "no 'select the part to regenerate' message"; fi

# ---- classifier guidance ----------------------------------------------------
FM=$SRC/models/fashion.safetensors
FC=$SRC/models/fashion-classifier.safetensors
"$DIFFUSE" sample --model "$FM" --class Trouser --classifier "$FC" --classifier-scale 1 \
  --steps 5 --eta 1 --seed 3 --precision fp32 --quiet --out "$R/gen-clf-1.png" ||
  say "diffuse sample --classifier failed"
same "generate with the fashion classifier (scale 1) = diffuse sample --classifier" \
  "$OUT/gen-clf-1.png" "$R/gen-clf-1.png" 1 1
"$DIFFUSE" sample --model "$FM" --class Bag --classifier "$FC" --classifier-scale 4 \
  --steps 5 --eta 1 --seed 8 --precision fp32 --quiet --out "$R/gen-clf-4.png" ||
  say "diffuse sample --classifier failed"
same "classifier by name, scale 4 = diffuse sample --classifier-scale 4" \
  "$OUT/gen-clf-4.png" "$R/gen-clf-4.png" 1 1
"$DIFFUSE" sample --model "$FM" --class Bag --steps 5 --eta 1 --seed 8 --precision fp32 \
  --quiet --out "$R/gen-clf-none.png" || say "diffuse sample failed"
same "classifier \"none\" = diffuse sample without a classifier" \
  "$OUT/gen-clf-none.png" "$R/gen-clf-none.png" 1 1
differ "the classifier changes the sample" "$OUT/gen-clf-4.png" "$OUT/gen-clf-none.png" 1 1
for msg in "is a classifier (for classifier guidance), not a diffusion model" \
           "is a diffusion model, not a classifier" "does not fit this model" \
           "needs a class to steer towards" "No classifier named 'giraffe-classifier'" \
           "'fashion-classifier' is a classifier (for classifier guidance)"; do
  if grep -qF "$msg" "$OUT/classifier.log"; then pass "classifier error mentions '$msg'";
  else fail "no classifier error with '$msg'"; fi
done

# ---- errors ------------------------------------------------------------------
same "bad model path leaves the image untouched" "$OUT/err-badmodel.png" "$IN/in-rgb.png" 0 3
same "non-model file leaves the image untouched" "$OUT/err-notmodel.png" "$IN/in-rgb.png" 0 3
for msg in "cannot open" "Indexed images are not supported" "giraffe" \
           "Guidance values" "No preset named" "15" "Strength 0" "no null class"; do
  if grep -q "$msg" "$OUT/errors.log"; then pass "error message mentions '$msg'";
  else fail "no error message with '$msg'"; fi
done

# (tools/install-plugin.sh, uninstall and tools/gimp-batch.sh: install-tests.sh)

say ""
say "GIMP batch tests: $PASS passed, $FAIL failed"
[ $FAIL -eq 0 ]
