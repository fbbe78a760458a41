#!/bin/bash
# From a fresh Debian 12 or 13 machine to a first generated image, in one
# command, run as yourself from the source tree (it uses sudo where needed;
# as root it needs no sudo):
#
#   tools/quickstart.sh
#
# 1. installs the build dependencies with apt-get (compiler included);
#    where GIMP 3 is packaged (Debian 13) also gimp and libgimp-3.0-dev;
# 2. configures and builds into build/ (with the plug-in where GIMP 3 is);
# 3. installs the diffuse command and the shipped presets into /usr/local
#    (sudo meson install -C build --tags cli; undo: sudo ninja -C build
#    uninstall);
# 4. with GIMP 3: installs the plug-in into your GIMP 3 profile
#    (tools/install-plugin.sh build; undo: tools/install-plugin.sh
#    --uninstall) and checks that GIMP lists its procedures;
# 5. makes a first image, first.png, with `diffuse sample`.
# Every failure says which step failed and shows its log.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

say () { printf 'quickstart: %s\n' "$*"; }
LOG=$(mktemp "${TMPDIR:-/tmp}/quickstart.XXXXXX.log")
# step WHAT CMD...: the command's output goes to the log; on failure say
# what failed and show the end of the log.
step () {
  what=$1; shift
  printf '\n$ %s\n' "$*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    {
      printf 'quickstart: FAILED: %s\n  command: %s\n' "$what" "$*"
      printf 'quickstart: last lines of the log (%s):\n' "$LOG"
      tail -n 40 "$LOG" | sed 's/^/  | /'
    } >&2
    exit 1
  fi
}
say "log: $LOG"

if [ "$(id -u)" -eq 0 ]; then
  SUDO=
elif command -v sudo >/dev/null 2>&1; then
  SUDO=sudo
else
  echo "quickstart: needs root or sudo (for apt-get and the install into /usr/local)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "quickstart: apt-get not found: this script is for Debian (and derivatives)." >&2
  echo "  Elsewhere install a C compiler, meson, ninja, pkg-config and the development" >&2
  echo "  files of glib-2.0, json-glib-1.0, libpng and OpenBLAS, then follow README's" >&2
  echo "  \"Building by hand\"." >&2
  exit 1
fi
. /etc/os-release 2>/dev/null || true
say "system: ${PRETTY_NAME:-unknown}"

# ---- 1. packages -----------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
say "apt-get update"
step "apt-get update" $SUDO apt-get update
PACKAGES="build-essential meson ninja-build pkg-config libglib2.0-dev
  libjson-glib-dev libpng-dev libopenblas-dev libdnnl-dev"
if apt-cache show libgimp-3.0-dev >/dev/null 2>&1; then
  GIMP3=1
  PACKAGES="$PACKAGES gimp libgimp-3.0-dev"
  say "GIMP 3 is packaged here: installing it and its development files for the plug-in too"
else
  GIMP3=0
  say "no GIMP 3 here: building the engine and the diffuse command; the GIMP plug-in needs GIMP 3 (Debian 13, or another distribution with GIMP 3)"
fi
say "apt-get install" $PACKAGES
step "apt-get install" $SUDO apt-get install -y --no-install-recommends $PACKAGES

# ---- 2. build ----------------------------------------------------------------
if [ $GIMP3 -eq 1 ]; then PLUGIN=enabled; else PLUGIN=disabled; fi
if [ -f build/build.ninja ]; then
  say "build/ exists: meson configure build -Dplugin=$PLUGIN"
  step "meson configure build" meson configure build -Dplugin=$PLUGIN
else
  say "meson setup build -Dplugin=$PLUGIN"
  step "meson setup build" meson setup build -Dplugin=$PLUGIN
fi
say "ninja -C build (a minute or two)"
step "building (ninja -C build)" ninja -C build

# ---- 3. diffuse on PATH --------------------------------------------------------
prefix=$(meson introspect build --buildoptions |
         python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
say "installing diffuse and the presets into $prefix (meson install -C build --tags cli)"
step "meson install -C build --tags cli" $SUDO meson install -C build --tags cli --no-rebuild
hash -r
if [ "$(command -v diffuse || true)" != "$prefix/bin/diffuse" ]; then
  say "note: $prefix/bin is not first on your PATH; run $prefix/bin/diffuse"
fi
DIFFUSE=$prefix/bin/diffuse

# ---- 4. the GIMP plug-in ---------------------------------------------------------
if [ $GIMP3 -eq 1 ]; then
  say "installing the GIMP plug-in for $(id -un) (tools/install-plugin.sh build)"
  if ! tools/install-plugin.sh build; then
    echo "quickstart: FAILED: tools/install-plugin.sh build (its message is above)" >&2
    exit 1
  fi
  say "checking that GIMP 3 lists the plug-in's procedures (gimp-console-3.0)"
  step "GIMP 3 lists plug-in-diffuse-generate" \
    timeout 300 gimp-console-3.0 -i --quit --batch-interpreter=plug-in-script-fu-eval \
      -b '(if (not (car (gimp-pdb-procedure-exists "plug-in-diffuse-generate"))) (error "plug-in-diffuse-generate is not registered"))'
  say "GIMP 3 lists plug-in-diffuse-generate: Filters > Render > Diffusion"
fi

# ---- 5. a first image --------------------------------------------------------------
if [ -f models/fashion.safetensors ]; then
  model=models/fashion.safetensors
  class=7           # Fashion-MNIST label 7: sneaker
else
  say "models/fashion.safetensors not found; using a small random-weight" \
      "test model (the image will be noise-like)"
  model=tests/data/golden/forward-grey-cond.safetensors
  class=cross
fi
step "diffuse info $model" "$DIFFUSE" info "$model"
# the defaults are the best measured settings (the preset balanced: DDIM
# 50, eta 1, guidance 2; guidance 0 for a model without a null class)
say "diffuse sample --model $model --class $class --seed 1 --out first.png"
step "diffuse sample" "$DIFFUSE" sample --model "$model" --class "$class" \
  --seed 1 --quiet --out first.png
rm -f "$LOG"

say "done:"
say "  built in         $SRC/build (tests: meson test -C build)"
say "  diffuse          $DIFFUSE, presets in $prefix/share/gimp-diffusion/presets"
if [ $GIMP3 -eq 1 ]; then
  say "  GIMP plug-in     ${GIMP3_DIRECTORY:-${XDG_CONFIG_HOME:-$HOME/.config}/GIMP/3.0}/plug-ins/gimp-diffusion"
fi
say "  first image      $SRC/first.png"
