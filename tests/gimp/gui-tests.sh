#!/bin/sh
# GIMP 3 GUI tests under Xvfb, run INSIDE the Debian 13 root after
# inner-tests.sh (it built the plug-in and made the inputs):
#   dbus-run-session -- sh /src/tests/gimp/gui-tests.sh [SCREENSHOT.png]
# GIMP runs with its real UI on a virtual display; commands go to it over
# D-Bus (org.gimp.GIMP.UI.BatchRun), keys and screenshots via xdotool and
# ImageMagick.  Checks:
#  - one Ctrl+Z after img2img restores the original pixels (one undo step),
#    and one after inpaint (a feathered selection) too
#  - the dialog's Cancel during sampling stops it and leaves the image alone
#  - the dialog's OK samples with a live preview and adds the layer
#  - a new user's first look (fresh profile, a layer larger than the
#    model): the default size mode paints one subject scaled to fit, the
#    settings that do nothing are disabled (Randomness with DDPM, Step
#    noise with DDIM, Follow the class without a class), GIMP's own
#    Load/Save Settings buttons are not shown, and the dialog says how
#    long the run will take; while it runs, elapsed and remaining time
# and saves a screenshot of the dialog while it samples.  The dialog
# reports its state on stderr (GIMP_DIFFUSION_TRACE_DIALOG), which these
# checks read from GIMP's log.
set -u

SRC=/src
BUILD=${BUILD:-$SRC/build-gimproot}
T=/tmp/gimp-diffusion-tests
IN=$T/in
OUT=$T/gui
CHECK=$BUILD/plugin/diffuse-png-check
SHOT=${1:-$OUT/dialog.png}
PASS=0
FAIL=0
say () { printf '%s\n' "$*"; }
pass () { PASS=$((PASS + 1)); say "PASS: $*"; }
fail () { FAIL=$((FAIL + 1)); say "FAIL: $*"; }

MODEL=$SRC/models/fashion.safetensors
CLASS=7
if [ ! -f "$MODEL" ]; then
  MODEL=$SRC/tests/data/golden/forward-grey-cond.safetensors
  CLASS=ring
fi

rm -rf "$OUT"
mkdir -p "$OUT/models"
# a snapshot: models/ may be replaced while training runs
cp "$MODEL" "$OUT/models/"
MODEL=$OUT/models/$(basename "$MODEL")
# a fresh home: the profile is ~/.config/GIMP/3.0, as for a user
export HOME=$T/home
rm -rf "$HOME"
export GIMP3_DIRECTORY=$HOME/.config/GIMP/3.0
mkdir -p "$GIMP3_DIRECTORY/plug-ins/gimp-diffusion"
# the user's models folder holds the shipped classifiers (and the emoji
# model): the model list must show the model only, the classifier list
# only the classifier that fits the chosen model
mkdir -p "$GIMP3_DIRECTORY/diffusion/models"
for f in emoji fashion-classifier emoji-classifier; do
  [ -f "$SRC/models/$f.safetensors" ] && cp "$SRC/models/$f.safetensors" "$GIMP3_DIRECTORY/diffusion/models/"
done
install -m 755 "$BUILD/plugin/gimp-diffusion" "$GIMP3_DIRECTORY/plug-ins/gimp-diffusion/"

export GIMP_DIFFUSION_TRACE_DIALOG=1
# a free display number, chosen by Xvfb (-displayfd): X's abstract sockets
# are shared by every root on the machine, so a fixed :99 collides with
# another run's display
Xvfb -displayfd 5 -screen 0 1280x800x24 -nolisten tcp \
  5>"$OUT/display" >"$OUT/xvfb.log" 2>&1 &
XPID=$!
i=0
while [ ! -s "$OUT/display" ] && [ $i -lt 60 ]; do sleep 0.5; i=$((i + 1)); done
[ -s "$OUT/display" ] || { fail "Xvfb did not start"; cat "$OUT/xvfb.log"; exit 1; }
export DISPLAY=:$(head -n 1 "$OUT/display")
gimp-3.0 --no-splash >"$OUT/gimp.log" 2>&1 &
GPID=$!
cleanup () { kill "$GPID" 2>/dev/null; sleep 1; kill -9 "$GPID" 2>/dev/null; kill "$XPID" 2>/dev/null; }
trap cleanup EXIT

# Script-Fu in the running GIMP; lib.scm's helpers are loaded each time.
# BatchRun only queues the command: callers wait for the files it writes.
batch () {
  r=$(gdbus call --session --timeout 600 --dest org.gimp.GIMP.UI \
      --object-path /org/gimp/GIMP/UI --method org.gimp.GIMP.UI.BatchRun \
      plug-in-script-fu-eval "(begin (load \"$SRC/tests/gimp/scm/lib.scm\") (set! out-dir \"$OUT/\") $1)" 2>&1)
  [ "$r" = "(true,)" ]
}
wait_file () {
  i=0
  while [ $i -lt "${2:-120}" ]; do
    [ -s "$1" ] && { sleep 0.5; return 0; }
    sleep 0.5
    i=$((i + 1))
  done
  return 1
}
# The newest mapped window of that title.  Each plug-in run is a new X
# client, and X reuses a closed client's window ids: a search without
# --onlyvisible may return a dialog that is already gone.
wait_window () {
  i=0
  while [ $i -lt 120 ]; do
    w=$(xdotool search --onlyvisible --name "$1" 2>/dev/null | tail -1)
    if [ -n "$w" ]; then echo "$w"; return 0; fi
    sleep 0.5
    i=$((i + 1))
  done
  return 1
}
# until no mapped window of that title is left (the next dialog may get
# the same window id)
wait_gone () {
  i=0
  while [ $i -lt 120 ]; do
    xdotool search --onlyvisible --name "$1" >/dev/null 2>&1 || return 0
    sleep 0.5
    i=$((i + 1))
  done
  return 1
}
# keys as a keyboard types them (XTEST) into the focused window: events
# sent to a window id (XSendEvent) were lost or went to a closed dialog
# whose id a new one had taken
key () { xdotool windowfocus --sync "$1" 2>/dev/null; xdotool key --clearmodifiers "$2"; }

up=0
for i in $(seq 120); do
  if batch '(gimp-message "up")' 2>/dev/null; then up=1; break; fi
  sleep 1
done
[ $up -eq 1 ] || { fail "GIMP did not come up"; tail "$OUT/gimp.log"; exit 1; }
# GIMP's main window (single-window mode) or the image window
# (GIMP keeps unmapped toplevels of the same title: only a mapped one)
main_window () { xdotool search --onlyvisible --name "GIMP\$" 2>/dev/null | tail -1; }
# the number of trace lines so far: a check reads only what came after
mark () { wc -l <"$OUT/gimp.log"; }
since () { tail -n +"$(($1 + 1))" "$OUT/gimp.log"; }
# wait_log MARK PATTERN [HALF_SECONDS]: until GIMP's log shows PATTERN
wait_log () {
  i=0
  while [ $i -lt "${3:-120}" ]; do
    since "$1" | grep -q "$2" && return 0
    sleep 0.5
    i=$((i + 1))
  done
  return 1
}
# undone NAME: exports the image until it equals the input (the undo
# may take a moment to reach the image under load); prints the last check
undone () {
  j=0
  while [ $j -lt 10 ]; do
    rm -f "$OUT/$1.png"
    batch "(export-image (vector-ref (car (gimp-get-images)) 0) \"$1.png\")"
    wait_file "$OUT/$1.png" || { echo "no export"; return 1; }
    r=$($CHECK same "$OUT/$1.png" "$IN/in-rgb.png" 0 3 2>&1) && { echo "$r"; return 0; }
    sleep 1
    j=$((j + 1))
  done
  echo "$r"
  return 1
}

# ---- undo: one Ctrl+Z restores the layer ---------------------------------
batch '(let ((image (load-image "in-rgb.png")))
         (gimp-display-new image)
         (plug-in-diffuse-img2img #:run-mode RUN-NONINTERACTIVE #:image image
           #:drawables (vector (vector-ref (layers-of image) 0))
           #:model (model "rgb-uncond") #:strength 0.6 #:steps 10 #:seed 3)
         (gimp-displays-flush)
         (export-image image "undo-before.png"))'
wait_file "$OUT/undo-before.png" || fail "img2img in the GUI"
W=$(main_window)
[ -n "$W" ] || fail "no GIMP window"
key "$W" ctrl+z
if $CHECK differ "$OUT/undo-before.png" "$IN/in-rgb.png" 1 3 >/dev/null 2>&1; then
  pass "img2img changed the displayed image"
else
  fail "img2img did not change the displayed image"
fi
if r=$(undone undo-after); then
  pass "one Ctrl+Z restores the original ($r)"
else
  fail "Ctrl+Z did not restore the original ($r)"
fi

# ---- undo: one Ctrl+Z undoes inpaint (on the same, restored image) --------
batch '(let ((image (vector-ref (car (gimp-get-images)) 0)))
         (gimp-image-select-ellipse image CHANNEL-OP-REPLACE 4 4 8 8)
         (gimp-selection-feather image 2)
         (plug-in-diffuse-inpaint #:run-mode RUN-NONINTERACTIVE #:image image
           #:drawables (vector (vector-ref (layers-of image) 0))
           #:model (model "rgb-uncond") #:steps 6 #:seed 3)
         (gimp-displays-flush)
         (export-image image "undo-inp-before.png"))'
wait_file "$OUT/undo-inp-before.png" || fail "inpaint in the GUI"
key "$W" ctrl+z
if $CHECK differ "$OUT/undo-inp-before.png" "$IN/in-rgb.png" 1 3 >/dev/null 2>&1; then
  pass "inpaint changed the displayed image"
else
  fail "inpaint did not change the displayed image"
fi
if r=$(undone undo-inp-after); then
  pass "one Ctrl+Z undoes inpaint ($r)"
else
  fail "Ctrl+Z did not undo inpaint ($r)"
fi

# ---- a new user's first look ----------------------------------------------
# (first, in the fresh profile: later runs show the last values; nothing
# but the model is given, so every other value is the default)
m=$(mark)
batch "(let* ((image (new-image 96 64 RGB RGB-IMAGE)))
        (gimp-display-new image)
        (plug-in-diffuse-generate #:run-mode RUN-INTERACTIVE #:image image
          #:drawables (vector (vector-ref (layers-of image) 0)) #:model \"$MODEL\")
        (if (= (n-layers image) 1) (export-image image \"first-look-closed.png\")))" &
if D=$(wait_window "^Diffusion: Generate$"); then
  wait_log "$m" "dialog estimate:"
  timeout 10 import -window "$D" "$OUT/first-look.png" || true
  t=$(since "$m")
  if echo "$t" | grep -q "dialog size: Paints one subject at .* and scales it to the 96 x 64 area"; then
    pass "default size mode on a 96x64 layer: one subject, scaled ($(echo "$t" | grep -o "Paints one subject at [0-9]* x [0-9]*"))"
  else
    fail "default size mode: $(echo "$t" | grep "dialog size:" | tail -1)"
  fi
  if echo "$t" | grep -q "dialog setting: eta on" && echo "$t" | grep -q "dialog setting: variance off"; then
    pass "DDIM (the default): Randomness enabled, Step noise disabled"
  else
    fail "DDIM: sensitivity of eta / variance: $(echo "$t" | grep "dialog setting:" | tr '\n' ' ')"
  fi
  if echo "$t" | grep -q "dialog setting: guidance off"; then
    pass "no class chosen (the null class): Follow the class disabled"
  else
    fail "null class: guidance not disabled: $(echo "$t" | grep "dialog setting: guidance" | tr '\n' ' ')"
  fi
  # the defaults are the best measured settings, the preset balanced
  if echo "$t" | grep -q "dialog values: steps 50, sampler ddim, eta 1, guidance 2$"; then
    pass "a fresh profile starts from the best measured settings (balanced: DDIM 50, eta 1, w 2)"
  else
    fail "first values: $(echo "$t" | grep "dialog values:" | tail -1)"
  fi
  if e=$(echo "$t" | grep -o "dialog estimate: Takes .*" | tail -1) && [ -n "$e" ]; then
    pass "the dialog estimates the run's time before it starts (${e#dialog estimate: })"
  else
    fail "no time estimate: $(echo "$t" | grep "dialog estimate" | tail -1)"
  fi
  if [ "$CLASS" = 7 ] && [ -f "$SRC/models/emoji-classifier.safetensors" ]; then
    # the fashion model: its classifier only, and no classifier among the models
    if echo "$t" | grep -q "dialog classifiers: None, fashion-classifier\$"; then
      pass "Steer by offers None and the fashion classifier only (not emoji's)"
    else
      fail "classifier list: $(echo "$t" | grep "dialog classifiers:" | tail -1)"
    fi
    if l=$(echo "$t" | grep "dialog models:" | tail -1) && [ -n "$l" ] &&
       echo "$l" | grep -q "emoji" && ! echo "$l" | grep -q "classifier"; then
      pass "the model list holds no classifier ($l)"
    else
      fail "model list: $(echo "$t" | grep "dialog models:" | tail -1)"
    fi
  fi
  if echo "$t" | grep -q "dialog setting: classifier-scale off: no classifier chosen"; then
    pass "no classifier chosen: How hard to steer disabled"
  else
    fail "classifier-scale not disabled without a classifier: $(echo "$t" | grep "classifier-scale" | tail -1)"
  fi
  # GIMP's own buttons would read "Load Saved Settings": the screenshot
  # cannot be searched for text, so the trace says what was hidden
  if echo "$t" | grep -q "dialog hidden: GIMP's Load/Save Settings"; then
    pass "one preset mechanism: GIMP's Load/Save Settings buttons are hidden"
  else
    fail "GIMP's Load/Save Settings buttons were not hidden"
  fi
  key "$D" Escape
  wait_gone "^Diffusion: Generate$" || fail "Escape did not close the first dialog"
  if wait_file "$OUT/first-look-closed.png" 40; then
    pass "closing the first dialog adds nothing"
  else
    fail "closing the first dialog: no export (a layer was added?)"
  fi
else
  fail "the dialog did not open for the first look"
fi

# ---- a model without a null class: Follow the class shows 0, disabled -----
m=$(mark)
batch "(let* ((image (new-image 32 32 GRAY GRAY-IMAGE)))
        (gimp-display-new image)
        (plug-in-diffuse-generate #:run-mode RUN-INTERACTIVE #:image image
          #:drawables (vector (vector-ref (layers-of image) 0))
          #:model \"$SRC/tests/data/golden/forward-ga-3level.safetensors\" #:class \"1\")
        (if (= (n-layers image) 1) (export-image image \"no-null-closed.png\")))" &
if D=$(wait_window "^Diffusion: Generate$"); then
  i=0
  while [ $i -lt 60 ] && ! since "$m" | grep -q "dialog estimate:"; do sleep 0.5; i=$((i + 1)); done
  t=$(since "$m")
  if echo "$t" | grep -q "dialog guidance: 0: the model has no null class" &&
     echo "$t" | grep -q "dialog values: steps 50, sampler ddim, eta 1, guidance 0$" &&
     echo "$t" | grep -q "dialog setting: guidance off"; then
    pass "a model without a null class: Follow the class shows 0, disabled (the rest as balanced)"
  else
    fail "no null class: $(echo "$t" | grep -E "dialog (values|guidance|setting: guidance)" | tr '\n' ' ')"
  fi
  key "$D" Escape
  wait_file "$OUT/no-null-closed.png" 40 || fail "closing the dialog (no null class): no export"
else
  fail "the dialog did not open for a model without a null class"
fi

# ---- dialog: Cancel while sampling leaves the image alone -----------------
# (first, in the fresh profile: later runs show the last values)
GEN="(let* ((image (new-image 64 64 RGB RGB-IMAGE)))
        (gimp-display-new image)
        (plug-in-diffuse-generate #:run-mode RUN-INTERACTIVE #:image image
          #:drawables (vector (vector-ref (layers-of image) 0))
          #:model \"$MODEL\" #:class \"$CLASS\" #:seed 42 #:size-mode \"model\" ARGS)
        (if (= (n-layers image) WANT) (export-image image \"NAME.png\")))"

m=$(mark)
batch "$(echo "$GEN" | sed 's/ARGS/#:steps 1000 #:sampler "ddpm"/; s/WANT/1/; s/NAME/after-cancel/')" &
D=$(wait_window "^Diffusion: Generate$") || fail "the dialog did not open"
wait_log "$m" "dialog setting: guidance"
t=$(since "$m")
if echo "$t" | grep -q "dialog setting: eta off" && echo "$t" | grep -q "dialog setting: variance on"; then
  pass "DDPM: Randomness disabled, Step noise enabled"
else
  fail "DDPM: sensitivity of eta / variance: $(echo "$t" | grep "dialog setting:" | tr '\n' ' ')"
fi
key "$D" alt+g                        # Generate: starts sampling, the dialog stays
# (at least two progress reports: the second has a time left)
wait_log "$m" "dialog progress: Step [0-9]* of 1000: .* left"
key "$D" alt+c                        # Cancel: stops within one step
wait_log "$m" "cancelled at step" 60
timeout 10 import -window "$D" "$OUT/dialog-stopped.png" || true
key "$D" Escape                       # closes the dialog
wait_gone "^Diffusion: Generate$" || fail "Escape did not close the dialog after Cancel"
if p=$(since "$m" | grep -o "dialog progress: Step [0-9]* of 1000: 0:[0-9][0-9], about [0-9:]* left" | tail -1) && [ -n "$p" ]; then
  pass "while it runs: elapsed and remaining time (${p#dialog progress: })"
else
  fail "no elapsed / remaining time while sampling: $(since "$m" | grep "dialog progress" | tail -1)"
fi
if wait_file "$OUT/after-cancel.png" 40 && grep -q "cancelled at step" "$OUT/gimp.log"; then
  pass "Cancel stopped sampling ($(grep -o "cancelled at step [0-9]* of [0-9]*" "$OUT/gimp.log")), no layer was added"
else
  fail "after Cancel: a layer was added or the dialog did not close"
fi

# ---- dialog: OK samples with a live preview and adds the layer ------------
batch "$(echo "$GEN" | sed 's/ARGS/#:preset "balanced" #:steps 50 #:guidance 1/; s/WANT/2/; s/NAME/after-ok/')" &
m=$(mark)
D=$(wait_window "^Diffusion: Generate$") || fail "the dialog did not open again"
wait_log "$m" "dialog estimate:"
# "Save as..." writes the current values as the user's own preset
key "$D" alt+v
if S=$(wait_window "^Save Preset$"); then
  xdotool windowfocus --sync "$S" 2>/dev/null
  xdotool type --clearmodifiers --delay 30 "my look"
  key "$S" Return
  wait_gone "^Save Preset$" || fail "the Save Preset dialog did not close"
  # the folder shared with the CLI: $XDG_CONFIG_HOME/gimp-diffusion/presets
  P=$HOME/.config/gimp-diffusion/presets/my-look.preset
  if wait_file "$P" 20 && grep -q "^steps=50" "$P" && grep -q "^guidance=1" "$P"; then
    pass "Save as... wrote the user preset ($(tr '\n' ' ' <"$P"))"
  else
    fail "Save as... did not write $P"
  fi
  if "$BUILD/cli/diffuse" presets 2>&1 | grep -q "^my-look .*steps=50"; then
    pass "diffuse presets lists the preset saved in GIMP"
  else
    fail "diffuse presets does not list my-look: $("$BUILD/cli/diffuse" presets 2>&1)"
  fi
else
  timeout 10 import -window "$D" "$OUT/save-as-failed.png" || true
  fail "the Save Preset dialog did not open (the dialog then: $OUT/save-as-failed.png)"
fi
key "$D" alt+g
# screenshots while it samples; the last one taken before it closed is kept
n=0
while xdotool search --onlyvisible --name "^Diffusion: Generate$" >/dev/null 2>&1 && [ $n -lt 600 ]; do
  # import can hang for good when the window closes while it grabs it
  # (seen once under load): give up after 10 s, as when it fails
  timeout 10 import -window "$D" "$OUT/frame-$n.png" 2>/dev/null || break
  n=$((n + 1))
  sleep 0.3
done
if [ $n -ge 3 ]; then
  cp "$OUT/frame-$((n - 2)).png" "$SHOT" && pass "screenshot of the dialog while sampling: $SHOT"
else
  # the screenshot only illustrates README; how many frames fit in one
  # run depends on the machine's load, so it is not a check
  say "note: only $n screenshots of the sampling dialog; $SHOT not refreshed"
fi
if wait_file "$OUT/after-ok.png" 120; then
  pass "OK sampled in the dialog and added the layer"
  # the values given (steps 50, w = 1; eta its default, 1): an interactive run
  # shows the preset named but keeps the values given; the 64x64 image is sampled at
  # the model's size and scaled ("model" size mode)
  SIZE=$($CHECK info "$OUT/after-ok.png" | awk '{print $2 "x" $1}')
  "$BUILD/plugin/diffuse-gimp-ref" "$MODEL" "$OUT/ref-ok.png" --class "$CLASS" --steps 50 \
    --guidance 1 --seed 42 --out-size "$SIZE" >/dev/null 2>&1
  if r=$($CHECK same "$OUT/after-ok.png" "$OUT/ref-ok.png" 1 1 2>&1); then
    pass "the dialog's layer = engine with the dialog's values ($r)"
  else
    fail "the dialog's layer differs from the engine ($r)"
  fi
else
  fail "OK did not add the layer"
fi

say ""
say "GIMP GUI tests: $PASS passed, $FAIL failed"
[ $FAIL -eq 0 ]
