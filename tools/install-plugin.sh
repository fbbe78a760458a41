#!/bin/bash
# Build the GIMP 3 plug-in and install it, with the shipped models and
# presets, into your own GIMP 3 profile (no root needed), or remove it:
#
#   tools/install-plugin.sh [BUILD]          build (in BUILD, default
#                                            build-plugin/) and install
#   tools/install-plugin.sh --uninstall      remove what it installed
#
# Needs GIMP 3 and its development files (Debian 13: apt install gimp
# libgimp-3.0-dev build-essential meson ninja-build pkg-config
# libjson-glib-dev libpng-dev libopenblas-dev).
#
# Where: GIMP's own rule for its profile folder ($GIMP3_DIRECTORY, else
# ${XDG_CONFIG_HOME:-~/.config}/GIMP/3.0), in plug-ins/gimp-diffusion/
# (GIMP wants each plug-in in a folder of its own name), with models/ and
# presets/ beside the binary; the list of installed files is kept there in
# installed-files, and --uninstall removes exactly those.
#
# The profile folder itself is GIMP's: on its first run GIMP 3 creates it
# and imports the settings of GIMP 2.10, but only when the folder does not
# exist yet.  So this script never creates it: when it is missing it runs
# GIMP once (gimp-console-3.0 -i --quit, GIMP's own first run, migration
# included), or, with --no-first-run, asks you to start GIMP 3 once.  Every failure says which step failed and shows its log.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
NAME=gimp-diffusion
ACTION=install
FIRST_RUN=1
BUILD=

usage () {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
  case $1 in
    --uninstall) ACTION=uninstall ;;
    --no-first-run) FIRST_RUN=0 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "install-plugin: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) BUILD=$1 ;;
  esac
  shift
done

say () { printf 'install-plugin: %s\n' "$*"; }
die () {
  printf 'install-plugin: %s\n' "$*" >&2
  [ -n "${LOG:-}" ] && [ ! -s "$LOG" ] && rm -f "$LOG"
  exit 1
}

LOG=$(mktemp "${TMPDIR:-/tmp}/install-plugin.XXXXXX.log")
# run WHAT CMD...: CMD's output goes to the log; on failure say what
# failed, show the end of the log and keep it.
run () {
  what=$1; shift
  printf '\n$ %s\n' "$*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    {
      printf 'install-plugin: FAILED: %s\n  command: %s\n' "$what" "$*"
      printf 'install-plugin: last lines of the log (%s):\n' "$LOG"
      tail -n 40 "$LOG" | sed 's/^/  | /'
    } >&2
    exit 1
  fi
}

# ---- GIMP's profile folder (libgimpbase's gimp_directory () rule) --------
if [ -n "${GIMP3_DIRECTORY:-}" ]; then
  case $GIMP3_DIRECTORY in
    /*) PROFILE=$GIMP3_DIRECTORY ;;
    *) PROFILE=$HOME/$GIMP3_DIRECTORY ;;   # GIMP takes it relative to HOME
  esac
  START=gimp-3.0
else
  PROFILE=${XDG_CONFIG_HOME:-$HOME/.config}/GIMP/3.0
  START=gimp-3.0
fi
DEST=$PROFILE/plug-ins/$NAME
MANIFEST=$DEST/installed-files

# remove the files listed in the manifest, then the folders if empty
uninstall () {
  if [ ! -f "$MANIFEST" ]; then
    if [ -e "$DEST" ]; then
      die "$DEST has no installed-files list: not installed by this script, left alone"
    fi
    return 1
  fi
  while IFS= read -r f; do
    case $f in
      ''|/*|*..*) die "bad line in $MANIFEST: '$f'" ;;
    esac
    rm -f -- "$DEST/$f"
  done <"$MANIFEST"
  rm -f -- "$MANIFEST"
  for d in "$DEST/models" "$DEST/presets" "$DEST"; do
    if [ -d "$d" ] && ! rmdir -- "$d" 2>/dev/null; then
      say "kept $d: it holds files this script did not install"
    fi
  done
  return 0
}

if [ $ACTION = uninstall ]; then
  rm -f "$LOG"
  if uninstall; then
    if [ -e "$DEST" ]; then
      say "removed what it installed in $DEST (restart GIMP: the procedures are gone)"
    else
      say "removed $DEST (restart GIMP: the procedures are gone)"
    fi
  else
    say "nothing to remove: $DEST does not exist"
  fi
  exit 0
fi

# ---- what is needed ----------------------------------------------------
missing=
for tool in cc meson ninja pkg-config; do
  command -v $tool >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  die "not found:$missing (Debian 13: sudo apt install build-essential meson ninja-build pkg-config)"
fi
if ! pkg-config --exists gimp-3.0 gimpui-3.0; then
  die "GIMP 3 development files not found (pkg-config gimp-3.0; Debian 13: sudo apt install gimp libgimp-3.0-dev)"
fi

# ---- the profile: GIMP creates it, never this script -------------------
if [ ! -d "$PROFILE" ]; then
  if [ $FIRST_RUN -eq 1 ] && command -v gimp-console-3.0 >/dev/null 2>&1; then
    say "$PROFILE does not exist yet: running GIMP 3 once"
    say "  (gimp-console-3.0 -i --quit: GIMP creates its profile and imports GIMP 2.10's settings)"
    run "GIMP 3's first run (gimp-console-3.0 -i --quit)" \
      timeout -k 30 600 gimp-console-3.0 -i --quit
  fi
  if [ ! -d "$PROFILE" ]; then
    die "GIMP 3's profile folder $PROFILE does not exist yet.
  Start GIMP 3 once first ($START), so that it creates it (and imports
  your GIMP 2.10 settings), quit it, then run this again.  Or install
  system-wide (README, \"Install and uninstall\")."
  fi
fi

# ---- build ---------------------------------------------------------------
say "log: $LOG"
BUILD=${BUILD:-$SRC/build-plugin}
opts="-Dplugin=enabled"
if [ -f "$BUILD/build.ninja" ]; then
  run "meson configure $BUILD" meson configure "$BUILD" $opts
else
  run "meson setup $BUILD" meson setup "$BUILD" "$SRC" $opts --buildtype=release
fi
say "building the plug-in in $BUILD"
run "building the plug-in (ninja -C $BUILD)" ninja -C "$BUILD" plugin/$NAME

# ---- install -------------------------------------------------------------
# an upgrade first removes what the last install put there
[ -f "$MANIFEST" ] && uninstall >/dev/null
run "mkdir $DEST" mkdir -p "$DEST/models" "$DEST/presets"
: >"$MANIFEST.tmp"
put () {   # put FILE SUBDIR MODE
  base=$(basename "$1")
  run "installing $base" install -m "$3" "$1" "$DEST/$2$base"
  printf '%s\n' "$2$base" >>"$MANIFEST.tmp"
}
put "$BUILD/plugin/$NAME" "" 755
for f in "$SRC"/models/*.safetensors; do
  [ -e "$f" ] && put "$f" models/ 644
done
for f in "$SRC"/presets/*.preset; do
  put "$f" presets/ 644
done
mv "$MANIFEST.tmp" "$MANIFEST"
rm -f "$LOG"

say "installed $DEST/$NAME"
say "  models: $(cd "$DEST/models" && ls | tr '\n' ' ')"
say "  presets: $(ls "$DEST/presets" | wc -l) in $DEST/presets"
say "(re)start GIMP 3: Filters > Render > Diffusion"
say "remove it with: tools/install-plugin.sh --uninstall"
