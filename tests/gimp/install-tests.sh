#!/bin/sh
# Install, upgrade, uninstall and batch tests, run INSIDE the Debian 13
# root with the source at /src, after inner-tests.sh built the plug-in
# (tests/gimp/run-tests.sh runs both).  Each user gets a throw-away HOME,
# so GIMP's profile rules apply as for a real user
# (~/.config/GIMP/3.0):
#  - tools/install-plugin.sh before GIMP 3 ever ran: GIMP's own first run
#    still imports a GIMP 2.10 gimprc setting, and creates its folders;
#  - --no-first-run without a profile: refused, nothing created;
#  - install into a profile GIMP created: the plug-in runs with a shipped
#    model by name and a preset, = the engine; upgrade; uninstall removes
#    exactly what was installed (a user's file stays) and GIMP no longer
#    lists the procedures;
#  - tools/gimp-batch.sh over a folder (img2img and generate) = the CLI;
#  - system-wide: meson --prefix=/usr, ninja install (also /usr/bin/diffuse),
#    GIMP lists the procedures, ninja uninstall removes them again.
set -u

SRC=/src
BUILD=${BUILD:-$SRC/build-gimproot}
T=/tmp/gimp-diffusion-install-tests
PASS=0
FAIL=0
say () { printf '%s\n' "$*"; }
pass () { PASS=$((PASS + 1)); say "PASS: $*"; }
fail () { FAIL=$((FAIL + 1)); say "FAIL: $*"; }
check () {   # check WHAT COMMAND...
  what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

ninja -C "$BUILD" plugin/gimp-diffusion plugin/diffuse-gimp-ref plugin/diffuse-png-check \
  cli/diffuse >"$T.build.log" 2>&1 || { cat "$T.build.log"; say "FAIL: build"; exit 1; }
REF=$BUILD/plugin/diffuse-gimp-ref
CHECK=$BUILD/plugin/diffuse-png-check
CLI=$BUILD/cli/diffuse
GOLDEN=$SRC/tests/data/golden
rm -rf "$T"
mkdir -p "$T"

# gimp_console HOME LOG SCHEME: gimp-console-3.0 as that user
gimp_console () {
  HOME=$1 timeout 300 gimp-console-3.0 -i --quit \
    --batch-interpreter=plug-in-script-fu-eval -b "$3" >"$2" 2>&1
}
# listed HOME: does GIMP (that user's) list plug-in-diffuse-generate?
listed () {
  gimp_console "$1" "$T/listed.log" \
    '(let ((v (car (gimp-pdb-procedure-exists "plug-in-diffuse-generate"))))
       (gimp-message (if (or (eq? v #t) (and (number? v) (= v 1)))
                         "PROC-LISTED" "PROC-NOT-LISTED")))'
  if grep -q PROC-LISTED "$T/listed.log"; then return 0; fi
  grep -q PROC-NOT-LISTED "$T/listed.log" || { say "  (GIMP did not answer:)"; tail -5 "$T/listed.log"; }
  return 1
}
not () { ! "$@"; }
same () {
  what=$1; shift
  if r=$($CHECK same "$@" 2>&1); then pass "$what ($r)"; else fail "$what ($r)"; fi
}

# ---- 1. install before GIMP 3's first run: migration from 2.10 intact -----
H=$T/home-upgrader
mkdir -p "$H/.config/GIMP/2.10"
printf '(undo-levels 37)\n' >"$H/.config/GIMP/2.10/gimprc"
HOME=$H "$SRC/tools/install-plugin.sh" "$BUILD" >"$T/install-1.log" 2>&1
rc=$?
check "install before GIMP 3's first run succeeds (rc $rc)" test $rc -eq 0
check "  it ran GIMP's own first run" grep -q "running GIMP 3 once" "$T/install-1.log"
check "  GIMP imported the 2.10 gimprc setting (undo-levels 37)" \
  grep -q "(undo-levels 37)" "$H/.config/GIMP/3.0/gimprc"
check "  GIMP created its own folders (scripts/, brushes/)" \
  test -d "$H/.config/GIMP/3.0/scripts" -a -d "$H/.config/GIMP/3.0/brushes"
check "  the plug-in is in the migrated profile" \
  test -x "$H/.config/GIMP/3.0/plug-ins/gimp-diffusion/gimp-diffusion"
check "  GIMP lists plug-in-diffuse-generate" listed "$H"
[ $rc -eq 0 ] || cat "$T/install-1.log"

# ---- 2. --no-first-run without a profile: a clear refusal, nothing made -----
H=$T/home-refused
mkdir -p "$H"
HOME=$H "$SRC/tools/install-plugin.sh" --no-first-run "$BUILD" >"$T/install-2.log" 2>&1
rc=$?
check "--no-first-run without a profile is refused (rc $rc)" test $rc -ne 0
check "  and says to start GIMP 3 once first" grep -q "Start GIMP 3 once first" "$T/install-2.log"
check "  and creates no GIMP folder" not test -e "$H/.config/GIMP"

# ---- 3. a profile GIMP created: install, run, upgrade, uninstall -----------
H=$T/home-user
mkdir -p "$H"
gimp_console "$H" "$T/first-run.log" '(gimp-message "first run")'
check "GIMP's first run created the profile" test -d "$H/.config/GIMP/3.0/scripts"
DEST=$H/.config/GIMP/3.0/plug-ins/gimp-diffusion
HOME=$H "$SRC/tools/install-plugin.sh" "$BUILD" >"$T/install-3.log" 2>&1
rc=$?
check "install into the profile GIMP created (rc $rc)" test $rc -eq 0
check "  no first run this time" not grep -q "running GIMP 3 once" "$T/install-3.log"
check "  binary, manifest and presets installed" \
  test -x "$DEST/gimp-diffusion" -a -f "$DEST/installed-files" -a -f "$DEST/presets/draft.preset"
[ $rc -eq 0 ] || cat "$T/install-3.log"

# a shipped model by name from models/ beside the binary, a preset from presets/
if ls "$SRC"/models/*.safetensors >/dev/null 2>&1; then
  # (a diffusion model: the shipped classifiers are NAME-classifier)
  m=$(basename "$(ls "$SRC"/models/*.safetensors | grep -v -- '-classifier\.safetensors$' | head -1)" .safetensors)
  gimp_console "$H" "$T/installed-run.log" \
    "(let* ((image (car (gimp-image-new 16 16 RGB)))
            (bg (car (gimp-layer-new image \"bg\" 16 16 RGB-IMAGE 100 LAYER-MODE-NORMAL))))
       (gimp-image-insert-layer image bg 0 0)
       (let ((layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                            #:image image #:drawables (vector bg) #:model \"$m\"
                            #:preset \"draft\" #:seed 12))))
         (gimp-image-remove-layer image bg)
         (file-png-export #:run-mode RUN-NONINTERACTIVE #:image image
                          #:file \"$T/installed.png\" #:save-transparent TRUE))
       (gimp-image-delete image))"
  # a 16x16 layer is smaller than the model: sampled at its size, shrunk
  # (from the installed copy: models/ may be replaced while training runs)
  "$REF" "$DEST/models/$m.safetensors" "$T/installed-ref.png" --seed 12 --steps 10 --eta 1 \
    --guidance 0 --out-size 16x16 >/dev/null 2>&1 || true
  if [ -s "$T/installed.png" ]; then
    pass "installed plug-in ran with model '$m' by name and preset 'draft'"
    same "  = engine (draft: 10 steps, eta 1, w 0; sampled at model size, shrunk)" \
      "$T/installed.png" "$T/installed-ref.png" 1
  else
    fail "installed plug-in did not run (log $T/installed-run.log)"; tail -5 "$T/installed-run.log"
  fi
fi

# upgrade: install again over it
sort "$DEST/installed-files" >"$T/manifest-1"
HOME=$H "$SRC/tools/install-plugin.sh" "$BUILD" >"$T/install-4.log" 2>&1
rc=$?
check "upgrade: installing again succeeds (rc $rc)" test $rc -eq 0
sort "$DEST/installed-files" >"$T/manifest-2"
check "  the same files are installed" cmp -s "$T/manifest-1" "$T/manifest-2"
check "  GIMP still lists the procedures" listed "$H"

# uninstall keeps what the user put there
printf 'mine\n' >"$DEST/models/my-notes.txt"
HOME=$H "$SRC/tools/install-plugin.sh" --uninstall >"$T/uninstall-1.log" 2>&1
check "uninstall with a user's file in models/: binary and manifest removed" \
  not test -e "$DEST/gimp-diffusion" -o -e "$DEST/installed-files"
check "  the user's file is kept, and named" \
  test -f "$DEST/models/my-notes.txt"
check "  and the message says so" grep -q "kept $DEST/models" "$T/uninstall-1.log"
rm -f "$DEST/models/my-notes.txt"

HOME=$H "$SRC/tools/install-plugin.sh" "$BUILD" >"$T/install-5.log" 2>&1
check "  installing again after that works" test -f "$DEST/presets/draft.preset"
HOME=$H "$SRC/tools/install-plugin.sh" --uninstall >"$T/uninstall-2.log" 2>&1
rc=$?
check "uninstall (rc $rc): plug-ins/gimp-diffusion is gone" test $rc -eq 0 -a ! -e "$DEST"
check "  the rest of the profile stays" test -f "$H/.config/GIMP/3.0/gimprc" -a -d "$H/.config/GIMP/3.0/plug-ins"
check "  GIMP no longer lists plug-in-diffuse-generate" not listed "$H"
HOME=$H "$SRC/tools/install-plugin.sh" --uninstall >"$T/uninstall-3.log" 2>&1
check "  uninstalling again says there is nothing to remove" grep -q "nothing to remove" "$T/uninstall-3.log"

# ---- 4. a failing step names itself and shows its log -----------------------
H=$T/home-user
mkdir -p "$T/badbuild"
printf 'not a build.ninja\n' >"$T/badbuild/build.ninja"
HOME=$H "$SRC/tools/install-plugin.sh" "$T/badbuild" >"$T/install-bad.log" 2>&1
rc=$?
check "a broken build folder fails (rc $rc)" test $rc -ne 0
check "  the message names the failed step and shows the log" \
  sh -c "grep -q 'FAILED: meson configure' '$T/install-bad.log' && grep -q 'last lines of the log' '$T/install-bad.log'"
[ $rc -ne 0 ] && grep -q FAILED "$T/install-bad.log" || cat "$T/install-bad.log"

# ---- 5. tools/gimp-batch.sh over a folder = the CLI --------------------------
H=$T/home-batch
mkdir -p "$H" "$T/batch-in" "$T/batch-out" "$T/batch-ref"
HOME=$H "$SRC/tools/install-plugin.sh" "$BUILD" >"$T/install-batch.log" 2>&1 ||
  { fail "install for the batch test"; cat "$T/install-batch.log"; }
M=$GOLDEN/forward-rgb-uncond.safetensors
magick -size 16x16 gradient:'#d03020-#2040c0' -type TrueColor PNG24:"$T/batch-in/red blue.png"
magick -size 16x16 radial-gradient:'#f0f020-#202080' -type TrueColor PNG24:"$T/batch-in/round.png"
magick -size 16x16 gradient:'#30a050-#a03050' -rotate 90 -type TrueColor PNG24:"$T/batch-in/green.PNG"
HOME=$H "$SRC/tools/gimp-batch.sh" --model "$M" --preset draft --strength 0.6 --seed 5 \
  "$T/batch-in" "$T/batch-out" >"$T/batch.log" 2>&1
rc=$?
check "gimp-batch.sh img2img over a folder of 3 images (rc $rc)" test $rc -eq 0
[ $rc -eq 0 ] || cat "$T/batch.log"
for n in "red blue" round green; do
  f=$(ls "$T/batch-in/$n".*)
  "$CLI" img2img --model "$M" --input "$f" --preset draft --strength 0.6 --seed 5 \
    --quiet --out "$T/batch-ref/$n.png" 2>/dev/null || say "CLI failed on $f"
  same "  batch img2img '$n' = diffuse img2img --preset draft --strength 0.6 --seed 5" \
    "$T/batch-out/$n.png" "$T/batch-ref/$n.png" 1 3
done
check "  no temporary folder left" not sh -c "ls -A '$T/batch-out' | grep -q '^\\.gimp-batch'"

mkdir -p "$T/batch-gen"
HOME=$H "$SRC/tools/gimp-batch.sh" --mode generate --model "$M" --preset draft --seed 9 \
  "$T/batch-in" "$T/batch-gen" >"$T/batch-gen.log" 2>&1
rc=$?
check "gimp-batch.sh --mode generate (rc $rc)" test $rc -eq 0
[ $rc -eq 0 ] || cat "$T/batch-gen.log"
"$CLI" sample --model "$M" --preset draft --seed 9 --quiet --out "$T/batch-ref/gen.png"
same "  generate = diffuse sample --preset draft --seed 9" "$T/batch-gen/round.png" "$T/batch-ref/gen.png" 1 3

# a failure: a model that does not exist, nothing written, the error shown
mkdir -p "$T/batch-bad"
HOME=$H "$SRC/tools/gimp-batch.sh" --model /nonexistent.safetensors --strength 0.5 \
  "$T/batch-in" "$T/batch-bad" >"$T/batch-bad.log" 2>&1
rc=$?
check "gimp-batch.sh with a missing model fails (rc $rc)" test $rc -ne 0
check "  names the image and shows GIMP's error" \
  sh -c "grep -q 'FAILED at' '$T/batch-bad.log' && grep -q 'nonexistent' '$T/batch-bad.log'"
check "  and writes nothing" test -z "$(ls -A "$T/batch-bad")"
HOME=$H "$SRC/tools/gimp-batch.sh" --strength 0.5 "$T/batch-in" "$T/batch-in" >"$T/batch-same.log" 2>&1
check "gimp-batch.sh refuses the input folder as output" grep -q "must not be the input folder" "$T/batch-same.log"

# ---- 5b. README's batch examples, run as written -------------------------
# (the indented blocks after each "<!-- tested: ..." line of README.md)
if [ -f "$SRC/models/fashion.safetensors" ]; then
  W=$T/readme
  mkdir -p "$W/photos"
  ln -s "$SRC/tools" "$W/tools"
  ln -s "$SRC/models" "$W/models"
  FM=$SRC/models/fashion.safetensors
  "$CLI" sample --model "$FM" --class 7 --seed 1 --steps 10 --quiet --out "$W/first.png"
  magick -size 32x32 radial-gradient:white-black -colorspace Gray -depth 8 -define png:color-type=0 PNG:"$W/photos/round.png"
  magick -size 32x32 gradient:white-black -colorspace Gray -depth 8 -define png:color-type=0 PNG:"$W/photos/fade.png"
  awk '/^<!-- tested:/ { n++; on = 1; next }
       on && /^    / { sub(/^    /, ""); print > (dir "/block-" n ".sh"); next }
       on && /^$/ { next }
       { on = 0 }' dir="$W" "$SRC/README.md"
  nblocks=$(ls "$W"/block-*.sh 2>/dev/null | wc -l)
  check "README has 5 tested batch blocks (found $nblocks)" test "$nblocks" -eq 5
  for b in "$W"/block-*.sh; do
    # diffuse on the PATH, as after the quick start's install
    (cd "$W" && HOME=$H PATH="$(dirname "$CLI"):$PATH" timeout 600 bash "$b") >"$b.log" 2>&1
    rc=$?
    check "README block $(basename "$b" .sh) runs as written (rc $rc)" test $rc -eq 0
    [ $rc -eq 0 ] || { cat "$b"; tail -15 "$b.log"; }
  done
  size=$($CHECK info "$W/sneaker.png" 2>&1)
  check "  README generate example wrote sneaker.png, 32x32 ($size)" \
    test "${size% *}" = "32 32"
  "$CLI" sample --model "$FM" --class Sneaker --preset balanced --seed 42 \
    --quiet --out "$W/sneaker-cli.png"
  same "  README generate example = diffuse sample" \
    "$W/sneaker.png" "$W/sneaker-cli.png" 1 1
  "$CLI" img2img --model "$FM" --class Sneaker --preset img2img-strong --seed 7 \
    --input "$W/first.png" --quiet --out "$W/first-i2i-cli.png" 2>/dev/null
  same "  README img2img example = diffuse img2img (first.png)" \
    "$W/first-i2i.png" "$W/first-i2i-cli.png" 1 1
  for n in round fade; do
    "$CLI" img2img --model "$FM" --class Sneaker --preset img2img-strong --seed 7 \
      --input "$W/photos/$n.png" --quiet --out "$W/$n-cli.png" 2>/dev/null
    same "  README gimp-batch.sh line: out/$n.png = diffuse img2img" "$W/out/$n.png" "$W/$n-cli.png" 1 1
    same "  README Script-Fu folder example: redone/$n.png = diffuse img2img" \
      "$W/redone/$n.png" "$W/$n-cli.png" 1 1
    same "  README CLI folder loop: redone-cli/$n.png = diffuse img2img" \
      "$W/redone-cli/$n.png" "$W/$n-cli.png" 1 1
  done
fi

# ---- 6. system-wide: meson --prefix=/usr, sudo ninja install / uninstall -----
SYS=$SRC/build-gimproot-sys
SYSDIR=$(pkg-config --variable=gimplibdir gimp-3.0)/plug-ins/gimp-diffusion
sys_uninstall () {
  [ -f "$SYS/meson-logs/install-log.txt" ] && ninja -C "$SYS" uninstall >"$T/sys-uninstall.log" 2>&1
}
sys_uninstall   # a leftover from an interrupted run
trap sys_uninstall EXIT INT TERM
if [ ! -f "$SYS/build.ninja" ]; then
  meson setup "$SYS" "$SRC" --prefix=/usr -Dplugin=enabled >"$T/sys-setup.log" 2>&1 ||
    { fail "meson setup --prefix=/usr"; cat "$T/sys-setup.log"; }
fi
ninja -C "$SYS" install >"$T/sys-install.log" 2>&1
rc=$?
check "system-wide: ninja -C build install (rc $rc)" test $rc -eq 0
[ $rc -eq 0 ] || tail -20 "$T/sys-install.log"
check "  installs $SYSDIR/gimp-diffusion" test -x "$SYSDIR/gimp-diffusion"
check "  installs /usr/bin/diffuse and the presets" \
  test -x /usr/bin/diffuse -a -f /usr/share/gimp-diffusion/presets/draft.preset
H=$T/home-sys
mkdir -p "$H"
check "  GIMP lists plug-in-diffuse-generate (a new user, nothing in the profile)" listed "$H"
check "  /usr/bin/diffuse finds the installed presets" \
  sh -c "cd / && /usr/bin/diffuse presets | grep -q '^balanced '"
ninja -C "$SYS" uninstall >"$T/sys-uninstall.log" 2>&1
rc=$?
trap - EXIT INT TERM
check "system-wide: ninja -C build uninstall (rc $rc)" test $rc -eq 0
check "  removes the plug-in folder, /usr/bin/diffuse and share/gimp-diffusion" \
  not test -e "$SYSDIR" -o -e /usr/bin/diffuse -o -e /usr/share/gimp-diffusion
check "  GIMP no longer lists plug-in-diffuse-generate" not listed "$H"

say ""
say "GIMP install tests: $PASS passed, $FAIL failed"
[ $FAIL -eq 0 ]
