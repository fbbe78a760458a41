#!/bin/bash
# End-to-end tests of the diffuse command-line tool.
#   test-cli.sh PATH/TO/diffuse PATH/TO/npy-compare
# Uses the golden models and reference outputs in $DIFFUSE_TEST_DATA/golden
# (made by tools/make_golden.py from an independent PyTorch reference):
# `diffuse forward` must reproduce every forward case, and `diffuse sample` /
# `diffuse img2img` every trajectory, with the options the .ini files name.
set -u

DIFFUSE=${1:?usage: test-cli.sh DIFFUSE NPY_COMPARE}
COMPARE=${2:?usage: test-cli.sh DIFFUSE NPY_COMPARE}
DATA=${DIFFUSE_TEST_DATA:?DIFFUSE_TEST_DATA is not set}
G=$DATA/golden
TMP=$(mktemp -d "${TMPDIR:-/tmp}/diffuse-cli-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# the user's own preset directory must not leak into the test
export XDG_CONFIG_HOME=$TMP/config

failures=0
checks=0

pass () { checks=$((checks + 1)); echo "ok - $1"; }
fail () { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL - $1"; }

# run NAME EXPECTED_STATUS ARGS...: run diffuse, keep stdout/stderr in
# $TMP/out, $TMP/err, and check the exit status.
run () {
  local name=$1 want=$2
  shift 2
  "$DIFFUSE" "$@" >"$TMP/out" 2>"$TMP/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then
    pass "$name (exit $got)"
    return 0
  fi
  fail "$name: exit $got, expected $want; stderr:"
  sed 's/^/    /' "$TMP/err"
  return 1
}

# An error must be exactly one line "diffuse: ..." on stderr.
one_line_error () {
  local lines
  lines=$(wc -l <"$TMP/err")
  if [ "$lines" -eq 1 ] && grep -q '^diffuse: ' "$TMP/err"; then
    pass "$1: one-line message: $(cat "$TMP/err")"
  else
    fail "$1: expected one line 'diffuse: ...', got $lines lines:"
    sed 's/^/    /' "$TMP/err"
  fi
}

expect_error () {
  local name=$1 want=$2
  shift 2
  run "$name" "$want" "$@" && one_line_error "$name"
}

contains () {
  if grep -q -- "$2" "$TMP/out"; then pass "$1"; else
    fail "$1: stdout lacks '$2':"; sed 's/^/    /' "$TMP/out"; fi
}

png_shape_is () {
  local got
  got=$("$COMPARE" --png-shape "$2" 2>&1)
  if [ "$got" = "$3" ]; then pass "$1: $2 is $got (C H W)"; else
    fail "$1: $2 is '$got', expected '$3'"; fi
}

compare () {
  if "$COMPARE" "$2" "$3" "$4" >"$TMP/cmp" 2>&1; then
    pass "$1: $(cat "$TMP/cmp")"
  else
    fail "$1:"; sed 's/^/    /' "$TMP/cmp"
  fi
}

ini () { sed -n "s/^$2=//p" "$1"; }

# ---- top level ---------------------------------------------------------
run "--help" 0 --help && contains "--help lists commands" "img2img"
run "no arguments" 2
expect_error "unknown command" 2 paint
run "sample --help" 0 sample --help && contains "sample --help" "--guidance"

# ---- info --------------------------------------------------------------
if run "info grey-cond" 0 info "$G/forward-grey-cond.safetensors"; then
  contains "info: image size" "^image_size: 16$"
  contains "info: channels" "^in_channels: 1 (grey)$"
  contains "info: classes" "^num_classes: 5$"
  contains "info: class names" "^  2: cross$"
  contains "info: null class" "^  4: none \[null class\]$"
  contains "info: parameter count" "^parameters: [0-9,]*[1-9]"
fi
if run "info rgba-sigma" 0 info "$G/forward-rgba-sigma.safetensors"; then
  contains "info: learn_sigma" "^learn_sigma: True$"
  contains "info: out channels" "^out_channels: 8$"
  contains "info: unconditional" "^num_classes: 0 (unconditional)$"
fi
if run "info frac" 0 info "$G/forward-frac.safetensors"; then
  contains "info: fractional channel_mult" "^channel_mult: 0.5,1,2 (channels 32,64,128)$"
fi
expect_error "info: missing file" 1 info "$TMP/no-such-model.safetensors"
expect_error "info: not a model" 1 info "$DATA/images/rgb8.png"
expect_error "info: no argument" 2 info

# ---- presets -----------------------------------------------------------
if run "presets" 0 presets; then
  for p in draft balanced faithful-to-class diverse ddpm-quality \
           img2img-light img2img-strong; do
    contains "presets lists $p" "^$p "
  done
fi

# ---- forward: every golden case ----------------------------------------
for x in "$G"/forward-*.x.npy; do
  case=${x%.x.npy}
  name=$(basename "$case")
  if run "$name" 0 forward --model "$case.safetensors" --input "$x" \
       --timestep "$case.t.npy" --class "$case.y.npy" --out "$TMP/$name.npy"; then
    compare "$name matches the reference" "$TMP/$name.npy" "$case.out.npy" 1e-4
  fi
done
# ---- classify: every golden classifier case (logits and gradient) ------
for x in "$G"/clf-*.x.npy; do
  case=${x%.x.npy}
  name=$(basename "$case")
  if run "classify $name" 0 classify --model "$case.safetensors" --input "$x" \
       --timestep "$case.t.npy" --class "$case.y.npy" --out "$TMP/$name.l.npy" \
       --grad-out "$TMP/$name.g.npy"; then
    compare "$name logits match the reference" "$TMP/$name.l.npy" "$case.logits.npy" 1e-4
    compare "$name gradient matches the reference" "$TMP/$name.g.npy" "$case.grad.npy" 2e-4
  fi
done
C=$G/clf-grey-attn-ss-updown
if run "classify by class name, logits only" 0 classify --model "$C.safetensors" \
     --input "$C.x.npy" --timestep 10 --class d --out "$TMP/cl.npy"; then
  pass "classify logits only"
fi
if run "info classifier" 0 info "$C.safetensors"; then
  contains "info names the classifier" "^type: classifier"
  contains "info shows the pool" "^pool: attention"
fi
expect_error "classify: a UNet is not a classifier" 1 classify \
  --model "$G/forward-grey-cond.safetensors" --input "$C.x.npy" --timestep 5 \
  --out "$TMP/cl.npy"
expect_error "forward: a classifier is not a UNet" 1 forward \
  --model "$C.safetensors" --input "$C.x.npy" --timestep 5 --class 1 \
  --out "$TMP/cl.npy"
expect_error "classify: class out of range" 1 classify --model "$C.safetensors" \
  --input "$C.x.npy" --timestep 5 --class 5 --out "$TMP/cl.npy" --grad-out "$TMP/cg.npy"
expect_error "classify: wrong channel count" 1 classify --model "$C.safetensors" \
  --input "$G/clf-rgb-adaptive-ss-conv.x.npy" --timestep 5 --out "$TMP/cl.npy"
expect_error "classify: --grad-out without --class" 2 classify --model "$C.safetensors" \
  --input "$C.x.npy" --timestep 5 --out "$TMP/cl.npy" --grad-out "$TMP/cg.npy"

expect_error "forward: missing --timestep" 2 forward \
  --model "$G/forward-grey-cond.safetensors" \
  --input "$G/forward-grey-cond.x.npy" --out "$TMP/f.npy"
expect_error "forward: wrong channel count" 1 forward \
  --model "$G/forward-rgb-uncond.safetensors" \
  --input "$G/forward-grey-cond.x.npy" --timestep 5 --out "$TMP/f.npy"
expect_error "forward: bad timestep" 1 forward \
  --model "$G/forward-grey-cond.safetensors" \
  --input "$G/forward-grey-cond.x.npy" --timestep abc --out "$TMP/f.npy"

# ---- sample / img2img: every golden trajectory --------------------------
for ini_file in "$G"/traj-*.ini; do
  name=$(basename "${ini_file%.ini}")
  model=$G/$(ini "$ini_file" model)
  class=$(ini "$ini_file" class_label)
  args=(--model "$model" --sampler "$(ini "$ini_file" sampler)"
        --respacing "$(ini "$ini_file" respacing)" --eta "$(ini "$ini_file" eta)"
        --variance "$(ini "$ini_file" variance)"
        --guidance "$(ini "$ini_file" guidance)" --seed "$(ini "$ini_file" seed)"
        --count "$(ini "$ini_file" count)" --height "$(ini "$ini_file" height)"
        --width "$(ini "$ini_file" width)" --quiet --out-npy "$TMP/$name.npy")
  [ "$class" != "-1" ] && args+=(--class "$class")
  null_model=$(ini "$ini_file" null_model)
  [ -n "$null_model" ] && args+=(--null-model "$G/$null_model")
  classifier=$(ini "$ini_file" classifier)
  [ -n "$classifier" ] && args+=(--classifier "$G/$classifier"
                                 --classifier-scale "$(ini "$ini_file" classifier_scale)")
  if [ "$(ini "$ini_file" clip_denoised)" != "true" ]; then
    fail "$name: clip_denoised false has no CLI option"; continue
  fi
  init=$(ini "$ini_file" init_image)
  if [ -n "$init" ]; then
    cmd=(img2img --input "$G/$init" --strength "$(ini "$ini_file" strength)")
  else
    cmd=(sample)
  fi
  if run "$name" 0 "${cmd[@]}" "${args[@]}"; then
    compare "$name matches the reference" "$TMP/$name.npy" \
      "$G/$name.x0.npy" 1e-3
  fi
done

# classifier guidance: bad combinations fail before any step
CG=$G/clf-grey-attn-ss-updown.safetensors
expect_error "sample: classifier of another channel count" 1 sample \
  --model "$G/forward-grey-cond.safetensors" \
  --classifier "$G/clf-rgb-adaptive-ss-conv.safetensors" --class 1 --steps 2 \
  --quiet --out "$TMP/x.png"
expect_error "sample: a UNet as classifier" 1 sample \
  --model "$G/forward-grey-cond.safetensors" \
  --classifier "$G/forward-grey-cond.safetensors" --class 1 --steps 2 \
  --quiet --out "$TMP/x.png"
expect_error "sample: a classifier as model" 1 sample --model "$CG" --class 1 \
  --steps 2 --quiet --out "$TMP/x.png"
expect_error "sample: classifier guidance without a class" 1 sample \
  --model "$G/forward-grey-cond.safetensors" --classifier "$CG" --steps 2 \
  --quiet --out "$TMP/x.png"
expect_error "sample: more classes than the classifier has" 1 sample \
  --model "$G/forward-rgba-sigma.safetensors" \
  --classifier "$G/clf-rgba-attn-noss-updown.safetensors" --class 3 \
  --steps 2 --quiet --out "$TMP/x.png"
expect_error "sample: attention-pool classifier at another size" 1 sample \
  --model "$G/forward-grey-cond.safetensors" --classifier "$CG" --class 1 \
  --width 32 --steps 2 --quiet --out "$TMP/x.png"
expect_error "sample: negative classifier scale" 1 sample \
  --model "$G/forward-grey-cond.safetensors" --classifier "$CG" --class 1 \
  --classifier-scale -1 --steps 2 --quiet --out "$TMP/x.png"

# PNG output: the model's channels (alpha kept), the right size, equal to
# the float samples rounded to 8 bits; --count K numbers the files.
M=$G/forward-grey-cond.safetensors
if run "sample grey, count 2" 0 sample --model "$M" --class cross --steps 3 \
     --guidance 1 --seed 5 --count 2 --out "$TMP/g.png" --out-npy "$TMP/g.npy"; then
  contains "sample reports the files" "wrote $TMP/g-1.png"
  png_shape_is "grey PNG" "$TMP/g-0.png" "1 16 16"
  png_shape_is "grey PNG" "$TMP/g-1.png" "1 16 16"
  for k in 0 1; do
    if "$COMPARE" --png-matches "$TMP/g-$k.png" "$TMP/g.npy" $k >/dev/null 2>&1; then
      pass "g-$k.png is image $k of g.npy"; else fail "g-$k.png is not image $k of g.npy"; fi
  done
  if grep -q '^step 3/3$' "$TMP/err"; then pass "progress on stderr"; else
    fail "no 'step 3/3' progress line on stderr"; fi
fi
# same seed, same result; a different seed differs
run "sample again, same seed" 0 sample --model "$M" --class cross --steps 3 \
  --guidance 1 --seed 5 --count 2 --quiet --out-npy "$TMP/g2.npy" \
  && compare "same seed gives the same samples" "$TMP/g2.npy" "$TMP/g.npy" 0
if [ -s "$TMP/out" ] || [ -s "$TMP/err" ]; then fail "--quiet printed something"; else
  pass "--quiet prints nothing"; fi
run "sample, other seed" 0 sample --model "$M" --class cross --steps 3 \
  --guidance 1 --seed 6 --count 2 --quiet --out-npy "$TMP/g3.npy" \
  && if "$COMPARE" "$TMP/g3.npy" "$TMP/g.npy" 1e-3 >/dev/null; then
       fail "another seed gave the same samples"; else pass "another seed differs"; fi

run "sample RGBA" 0 sample --model "$G/forward-rgba-sigma.safetensors" \
  --steps 2 --seed 1 --out "$TMP/rgba.png" --quiet \
  && png_shape_is "RGBA PNG keeps alpha" "$TMP/rgba.png" "4 16 16"
run "sample grey+alpha 32x32" 0 sample --model "$G/forward-ga-3level.safetensors" \
  --class 1 --steps 2 --seed 1 --out "$TMP/ga.png" --quiet \
  && png_shape_is "grey+alpha PNG" "$TMP/ga.png" "2 32 32"
run "sample RGB 16x32" 0 sample --model "$G/forward-rgb-uncond.safetensors" \
  --steps 2 --seed 1 --width 32 --height 16 --out "$TMP/rgb.png" --quiet \
  && png_shape_is "non-square PNG" "$TMP/rgb.png" "3 16 32"

# presets: applied first, explicit options win
run "preset draft" 0 sample --model "$M" --preset draft --seed 1 --out "$TMP/p.png" \
  && if grep -q '^step 10/10$' "$TMP/err"; then pass "draft runs 10 steps"; else
       fail "draft did not run 10 steps"; fi
run "preset draft, --steps 4" 0 sample --model "$M" --preset draft --steps 4 \
  --seed 1 --out "$TMP/p.png" \
  && if grep -q '^step 4/4$' "$TMP/err"; then pass "--steps overrides the preset"; else
       fail "--steps did not override the preset"; fi
printf '[preset]\nname=mine\nsteps=3\n' >"$TMP/mine.preset"
run "preset file" 0 sample --model "$M" --preset "$TMP/mine.preset" --seed 1 \
  --out "$TMP/p.png" \
  && if grep -q '^step 3/3$' "$TMP/err"; then pass "a .preset file applies"; else
       fail "the .preset file did not apply"; fi

# img2img from a PNG: respacing "20" over T = 1000 keeps t = round(i·999/19);
# the kept t nearest 0.5·1000 is 526 (i = 10), so 11 reverse steps.
if run "img2img PNG" 0 img2img --model "$M" --input "$TMP/g-0.png" --strength 0.5 \
     --steps 20 --class 0 --seed 3 --out "$TMP/i.png"; then
  contains "img2img prints the effective steps" \
    "img2img: strength 0.5 -> 11 reverse steps from t = 526"
  png_shape_is "img2img PNG" "$TMP/i.png" "1 16 16"
fi
run "img2img preset light" 0 img2img --model "$M" --input "$TMP/g-0.png" \
  --preset img2img-light --steps 20 --class 0 --seed 3 --out "$TMP/i.png" \
  && contains "img2img-light: strength 0.3 (t = 315, 7 steps)" \
       "strength 0.3 -> 7 reverse steps from t = 315"
run "img2img RGB input to a grey model" 0 img2img --model "$M" \
  --input "$DATA/images/rgba8.png" --width 16 --height 16 --strength 0.3 \
  --steps 10 --class 1 --seed 1 --out "$TMP/i2.png" --quiet \
  && png_shape_is "resized, converted input" "$TMP/i2.png" "1 16 16"

# --null-model: guidance for a class model without a null class (onelevel)
# from a separate unconditional model (frac: same channels, T, schedule)
O=$G/forward-onelevel.safetensors
N=$G/forward-frac.safetensors
run "sample, no guidance" 0 sample --model "$O" --class 1 --steps 3 --seed 8 \
  --quiet --out-npy "$TMP/o0.npy"
if run "sample --null-model" 0 sample --model "$O" --class 1 --guidance 2 \
     --null-model "$N" --steps 3 --seed 8 --quiet --out-npy "$TMP/o2.npy"; then
  if "$COMPARE" "$TMP/o2.npy" "$TMP/o0.npy" 1e-3 >/dev/null; then
    fail "--null-model guidance changed nothing"; else pass "--null-model guidance applies"; fi
fi
run "img2img --null-model" 0 img2img --model "$O" --class 0 --guidance 1 \
  --null-model "$N" --input "$DATA/images/rgba8.png" --width 16 --height 16 \
  --strength 0.5 --steps 4 --seed 2 --out "$TMP/o.png" --quiet \
  && png_shape_is "img2img with a null model" "$TMP/o.png" "2 16 16"
# a model as its own null model equals its built-in null-class guidance,
# up to rounding: one batch of 2 against two of 1 may sum in another order
# in OpenBLAS (its Zen/AVX2 kernels; seen 4e-4 after these 3 clipped
# steps), while a wrong null label differs by more than 1e-2
run "sample, own null class" 0 sample --model "$M" --class 2 --guidance 1.5 \
  --steps 3 --seed 4 --quiet --out-npy "$TMP/n1.npy" \
  && run "sample, itself as --null-model" 0 sample --model "$M" --class 2 \
       --guidance 1.5 --null-model "$M" --steps 3 --seed 4 --quiet \
       --out-npy "$TMP/n2.npy" \
  && compare "itself as null model = its null class" "$TMP/n2.npy" "$TMP/n1.npy" 2e-3
if expect_error "guidance without null class or --null-model" 1 sample --model "$O" \
     --class 1 --guidance 2 --out "$TMP/x.png"; then
  if grep -q "no null class" "$TMP/err"; then pass "the error names the missing null class"
  else fail "error lacks 'no null class': $(cat "$TMP/err")"; fi
fi
expect_error "--null-model: missing file" 1 sample --model "$O" --class 1 \
  --guidance 2 --null-model "$TMP/none.safetensors" --out "$TMP/x.png"
expect_error "--null-model: other channels" 1 sample --model "$O" --class 1 \
  --guidance 2 --null-model "$G/forward-rgb-uncond.safetensors" --out "$TMP/x.png"
expect_error "--null-model without a null class" 1 sample --model "$O" --class 1 \
  --guidance 2 --null-model "$G/forward-ga-3level.safetensors" --out "$TMP/x.png"

# ---- errors: one line, exit 1 (bad values) or 2 (usage) ----------------
expect_error "bad model path" 1 sample --model "$TMP/none.safetensors" --out "$TMP/x.png"
expect_error "corrupt model" 1 sample --model "$DATA/images/rgb8.png" --out "$TMP/x.png"
expect_error "bad class name" 1 sample --model "$M" --class giraffe --out "$TMP/x.png"
expect_error "class out of range" 1 sample --model "$M" --class 9 --out "$TMP/x.png"
expect_error "steps 0" 1 sample --model "$M" --steps 0 --out "$TMP/x.png"
expect_error "steps > T" 1 sample --model "$M" --steps 5000 --out "$TMP/x.png"
expect_error "steps not a number" 2 sample --model "$M" --steps many --out "$TMP/x.png"
expect_error "bad respacing" 1 sample --model "$M" --respacing ddim7x --out "$TMP/x.png"
expect_error "negative eta" 1 sample --model "$M" --eta -1 --out "$TMP/x.png"
expect_error "bad sampler" 2 sample --model "$M" --sampler euler --out "$TMP/x.png"
expect_error "bad variance" 2 sample --model "$M" --variance huge --out "$TMP/x.png"
expect_error "bad seed" 2 sample --model "$M" --seed -4 --out "$TMP/x.png"
expect_error "learned variance without learn_sigma" 1 sample --model "$M" \
  --sampler ddpm --variance learned --steps 2 --out "$TMP/x.png"
expect_error "guidance on an unconditional model" 1 sample \
  --model "$G/forward-rgb-uncond.safetensors" --guidance 2 --out "$TMP/x.png"
expect_error "size not a multiple" 1 sample --model "$G/forward-ga-3level.safetensors" \
  --class 0 --width 30 --out "$TMP/x.png"
expect_error "missing --model" 2 sample --out "$TMP/x.png"
expect_error "missing --out" 2 sample --model "$M"
expect_error "unknown option" 2 sample --model "$M" --out "$TMP/x.png" --colour red
expect_error "stray argument" 2 sample --model "$M" --out "$TMP/x.png" extra
expect_error "unknown preset" 1 sample --model "$M" --preset turbo --out "$TMP/x.png"
expect_error "unwritable output" 1 sample --model "$M" --steps 1 --quiet \
  --out "$TMP/no/such/dir/x.png"
expect_error "noise of the wrong shape" 1 sample --model "$M" \
  --noise "$G/forward-rgb-uncond.x.npy" --out "$TMP/x.png"
expect_error "img2img: missing --input" 2 img2img --model "$M" --strength 0.5 \
  --out "$TMP/x.png"
expect_error "img2img: corrupt PNG" 1 img2img --model "$M" \
  --input "$DATA/images/corrupt-crc.png" --strength 0.5 --out "$TMP/x.png"
expect_error "img2img: strength 0" 1 img2img --model "$M" --input "$TMP/g-0.png" \
  --strength 0 --out "$TMP/x.png"
expect_error "img2img: strength 1.5" 1 img2img --model "$M" --input "$TMP/g-0.png" \
  --strength 1.5 --out "$TMP/x.png"

# ---- settings: non-finite and out-of-range values (issues 9, 10) --------
err_has () {
  if grep -q -- "$2" "$TMP/err"; then pass "$1"; else
    fail "$1: stderr lacks '$2': $(cat "$TMP/err")"; fi
}
for opt in eta guidance; do
  for v in nan inf -inf 1e999; do
    expect_error "--$opt $v refused" 2 sample --model "$M" --$opt $v --out "$TMP/x.png" \
      && err_has "--$opt $v: message names the setting" "$opt: '$v' is not a finite number"
  done
done
expect_error "img2img --strength nan refused (not 'not given')" 2 img2img --model "$M" \
  --input "$TMP/g-0.png" --strength nan --out "$TMP/x.png" \
  && err_has "--strength nan: names it" "strength: 'nan' is not a finite number"
expect_error "--eta 10.0000001: out of range" 1 sample --model "$M" --eta 10.0000001 \
  --out "$TMP/x.png" && err_has "--eta 10.0000001 quoted as given" "eta 10.0000001 is out of range (0..10)"
expect_error "--eta 1e39: out of range" 1 sample --model "$M" --eta 1e39 \
  --out "$TMP/x.png" && err_has "--eta 1e39 quoted as given" "eta 1e39 is out of range"
run "img2img without --strength: the table's default 0.5" 0 img2img --model "$M" \
  --input "$TMP/g-0.png" --steps 20 --class 0 --seed 3 --out "$TMP/i.png" \
  && contains "img2img default strength 0.5 (t = 526, 11 steps)" \
       "strength 0.5 -> 11 reverse steps from t = 526"
# "given" is a flag, not a sentinel value: G_MININT is refused like any
# other negative width
expect_error "--width -2147483648 (not taken as 'not given')" 1 sample --model "$M" \
  --width -2147483648 --out "$TMP/x.png" && err_has "--width G_MININT: refused" "must be positive"
expect_error "--count 65" 1 sample --model "$M" --count 65 --out "$TMP/x.png"
expect_error "--steps 4001" 1 sample --model "$M" --steps 4001 --out "$TMP/x.png"
if run "sample --help lists the table's ranges" 0 sample --help; then
  contains "--help: eta range" "--eta=E .*(range 0..10); default 0"
  contains "--help: count range" "--count=K .*(range 1..64); default 1"
fi
if run "img2img --help: strength range" 0 img2img --help; then
  contains "--help: strength range" "--strength=S .*(range (0, 1\]); default 0.5"
fi

# ---- the user's preset folder: hostile entries are skipped (issue 10) ----
UP=$XDG_CONFIG_HOME/gimp-diffusion/presets
mkdir -p "$UP"
mkfifo "$UP/fifo.preset"
mkdir "$UP/folder.preset"
ln -s loop.preset "$UP/loop.preset"
printf 'garbage\0\377\n' >"$UP/garbage.preset"
printf '[preset]\nsteps=2\n' >"$UP/$(printf 'esc\033[31m').preset"
printf '[preset]\nname=mine\nsteps=3\n' >"$UP/mine.preset"
if timeout 20 "$DIFFUSE" presets >"$TMP/out" 2>"$TMP/err"; then
  pass "presets with a FIFO, a folder, a loop and garbage in the user folder (no hang)"
  contains "user preset listed" "^mine .*steps=3"
  contains "shipped presets still listed" "^draft "
  for f in fifo folder loop garbage; do
    err_has "warning names $f.preset" "warning: skipping .*$f.preset"
  done
  err_has "control characters escaped in the warning" 'esc\\x1b\[31m.preset'
  if grep -q $'\033' "$TMP/err" "$TMP/out"; then fail "raw escape printed"; else
    pass "no raw escape character printed"; fi
else
  fail "presets with hostile user files: exit $?"; sed 's/^/    /' "$TMP/err"
fi
run "--preset draft with bad user files" 0 sample --model "$M" --preset draft \
  --steps 1 --seed 1 --quiet --out "$TMP/p.png"
run "--preset mine from the user folder" 0 sample --model "$M" --preset mine --seed 1 \
  --out "$TMP/p.png" \
  && if grep -q '^step 3/3$' "$TMP/err"; then pass "the user's preset applies"; else
       fail "the user's preset did not apply"; fi
rm -rf "$UP"
printf 'root:$6$secretHASH$:19000:0:99999:7:::\n' >"$TMP/shadow"
expect_error "--preset on a non-preset file" 1 sample --model "$M" --preset "$TMP/shadow" \
  --out "$TMP/x.png"
if grep -q "secretHASH" "$TMP/err"; then fail "the file's contents were echoed"; else
  pass "--preset FILE does not echo the file's contents"; fi
DIFFUSE_USER_PRESETS_DIR=$TMP/elsewhere
mkdir -p "$DIFFUSE_USER_PRESETS_DIR"
printf '[preset]\nname=other\nsteps=4\n' >"$DIFFUSE_USER_PRESETS_DIR/other.preset"
DIFFUSE_USER_PRESETS_DIR=$DIFFUSE_USER_PRESETS_DIR run "DIFFUSE_USER_PRESETS_DIR" 0 presets \
  && contains "DIFFUSE_USER_PRESETS_DIR is the user folder" "^other .*steps=4"

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
