#!/bin/sh
# Build the GIMP 3 plug-in and install it, with the shipped models and
# presets, into your own GIMP profile (no root needed):
#
#   tools/install-plugin.sh            # builds in build-plugin/
#
# Needs GIMP 3 and its development files (Debian 13: apt install gimp
# libgimp-3.0-dev meson ninja-build pkg-config libjson-glib-dev libpng-dev
# libopenblas-dev).  Installs into
#   ${GIMP3_DIRECTORY:-~/.config/GIMP/3.0}/plug-ins/gimp-diffusion/
# (GIMP wants each plug-in in a folder of its own name) with models/ and
# presets/ beside the binary.  Restart GIMP; the procedures are under
# Filters > Render > Diffusion.  Your own models go in
# ~/.config/GIMP/3.0/diffusion/models, your presets in .../diffusion/presets.
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build-plugin}
PROFILE=${GIMP3_DIRECTORY:-${XDG_CONFIG_HOME:-$HOME/.config}/GIMP/3.0}
DEST=$PROFILE/plug-ins/gimp-diffusion

if ! pkg-config --exists gimp-3.0 gimpui-3.0; then
  echo "install-plugin: GIMP 3 development files not found (Debian 13: apt install libgimp-3.0-dev)" >&2
  exit 1
fi
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" "$SRC" -Dplugin=enabled --buildtype=release >/dev/null
fi
ninja -C "$BUILD" plugin/gimp-diffusion

mkdir -p "$DEST/models" "$DEST/presets"
install -m 755 "$BUILD/plugin/gimp-diffusion" "$DEST/gimp-diffusion"
for f in "$SRC"/models/*.safetensors; do
  [ -e "$f" ] && install -m 644 "$f" "$DEST/models/"
done
install -m 644 "$SRC"/presets/*.preset "$DEST/presets/"
mkdir -p "$PROFILE/diffusion/models" "$PROFILE/diffusion/presets"
echo "install-plugin: installed $DEST/gimp-diffusion"
echo "install-plugin: models: $(ls "$DEST/models" | tr '\n' ' ')"
echo "install-plugin: restart GIMP, then Filters > Render > Diffusion"
