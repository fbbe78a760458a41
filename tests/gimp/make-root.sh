#!/bin/sh
# Build (or reuse) a Debian 13 (trixie) root holding GIMP 3 and the build
# tools for the plug-in.  Debian 12 has only GIMP 2.10, so the plug-in is
# built and tested inside this root.  Needs root and mmdebstrap
# (apt-get install -y mmdebstrap).
#
# Usage: tests/gimp/make-root.sh ROOT
# Idempotent: when ROOT/.gimp-diffusion-root-ok exists, nothing is done.
set -eu

ROOT=${1:?usage: make-root.sh ROOT}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
STAMP="$ROOT/.gimp-diffusion-root-ok"

PACKAGES=gimp,libgimp-3.0-dev,build-essential,meson,ninja-build,pkg-config
PACKAGES=$PACKAGES,libgtk-3-dev,libjson-glib-dev,libpng-dev,libopenblas-dev
PACKAGES=$PACKAGES,xvfb,xauth,xdotool,imagemagick,x11-apps,dbus-x11

if [ -e "$STAMP" ]; then
  echo "make-root: reusing $ROOT"
  exit 0
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "make-root: mmdebstrap not found (apt-get install -y mmdebstrap)" >&2
  exit 1
fi

if [ -e "$ROOT" ]; then
  # A half-built root from an interrupted run: start over.
  echo "make-root: removing incomplete $ROOT"
  rm -rf --one-file-system "$ROOT"
fi

mkdir -p "$(dirname "$ROOT")"
mmdebstrap --variant=apt --include="$PACKAGES" trixie "$ROOT" "$MIRROR"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  dbus-uuidgen --ensure=/etc/machine-id
touch "$STAMP"
echo "make-root: $ROOT ready"
