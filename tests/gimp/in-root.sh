#!/bin/sh
# Run a command inside the Debian 13 root with the source tree at /src.
#   tests/gimp/in-root.sh ROOT COMMAND [ARGS...]
# Binds /proc, /sys, /dev and the source tree for the command's duration
# and unmounts them afterwards.  Needs root.
set -eu

ROOT=$(cd "${1:?usage: in-root.sh ROOT COMMAND...}" && pwd)
shift
SRC=$(cd "$(dirname "$0")/../.." && pwd)

mounted=""
cleanup () {
  for m in $mounted; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

bind () {
  mkdir -p "$ROOT$2"
  if ! mountpoint -q "$ROOT$2"; then
    mount --bind "$1" "$ROOT$2"
    mounted="$ROOT$2 $mounted"
  fi
}

bind /proc /proc
bind /sys /sys
bind /dev /dev
bind "$SRC" /src

chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  ${DIFFUSE_ROOT_ENV:-} "$@"
