#!/bin/bash
# The first run on a fresh machine, as README tells it: in a throw-away
# Debian root made with mmdebstrap (nothing but apt in it), with a copy of
# this source tree (its tracked and untracked, not ignored, files, as a
# clone has them), run README's two commands
#
#   tools/quickstart.sh
#   meson test -C build --print-errorlogs
#
# then check that `diffuse` is on PATH and works from anywhere, and that
# `sudo ninja -C build uninstall` removes it again.  On Debian 13 the quick
# start also installs GIMP 3 and the plug-in: checked to be in root's GIMP
# profile, which GIMP itself created.  Needs root, mmdebstrap and network
# access to the Debian mirror.
#
#   tests/fresh-root.sh SUITE [ROOT]      SUITE: bookworm (12) or trixie (13)
#
# ROOT (default /tmp/gimp-diffusion-fresh-SUITE) must not exist, or be a
# root this script made earlier; it is removed at the end unless KEEP=1.
set -euo pipefail

SUITE=${1:?usage: tests/fresh-root.sh bookworm|trixie [ROOT]}
ROOT=${2:-/tmp/gimp-diffusion-fresh-$SUITE}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SRC=$(cd "$(dirname "$0")/.." && pwd)
say () { printf 'fresh-root(%s): %s\n' "$SUITE" "$*"; }

case $SUITE in
  bookworm|trixie) ;;
  *) echo "fresh-root: SUITE is bookworm or trixie, not '$SUITE'" >&2; exit 2 ;;
esac
case $ROOT/ in
  "$SRC"/*) echo "fresh-root: $ROOT is inside the source tree; use a folder outside it" >&2; exit 2 ;;
esac
if [ -e "$ROOT" ]; then
  if [ -e "$ROOT/.gimp-diffusion-fresh" ]; then
    rm -rf --one-file-system "$ROOT"
  else
    echo "fresh-root: $ROOT exists and was not made by this script" >&2; exit 2
  fi
fi
command -v mmdebstrap >/dev/null || { echo "fresh-root: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }

mounted=""
cleanup () {
  for m in $mounted; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  if [ "${KEEP:-0}" != 1 ] && [ -e "$ROOT/.gimp-diffusion-fresh" ]; then
    rm -rf --one-file-system "$ROOT"
  fi
}
trap cleanup EXIT INT TERM

t0=$(date +%s)
say "mmdebstrap --variant=apt $SUITE $ROOT"
mmdebstrap --quiet --variant=apt "$SUITE" "$ROOT" "$MIRROR"
touch "$ROOT/.gimp-diffusion-fresh"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
for d in proc sys dev; do
  mount --bind "/$d" "$ROOT/$d"; mounted="$ROOT/$d $mounted"
done

# the source as a clone has it (uncommitted changes included)
mkdir -p "$ROOT/root/gimp-diffusion"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
   tar --null -T - --ignore-failed-read -cf -) | tar -C "$ROOT/root/gimp-diffusion" -xf -
t1=$(date +%s)
say "root made and source copied in $((t1 - t0)) s"

inside () {
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /root/gimp-diffusion && $1"
}

say "README step 1: tools/quickstart.sh"
inside 'tools/quickstart.sh'
t2=$(date +%s)
say "README step 2: meson test -C build --print-errorlogs"
inside 'meson test -C build --print-errorlogs'
t3=$(date +%s)

say "checks after the quick start"
inside 'test -s first.png && echo "first.png: $(stat -c %s first.png) bytes"'
inside 'cd / && command -v diffuse && diffuse presets | grep -q "^balanced " && echo "diffuse on PATH lists the presets"'
if [ "$SUITE" = trixie ]; then
  inside 'test -x /root/.config/GIMP/3.0/plug-ins/gimp-diffusion/gimp-diffusion && test -d /root/.config/GIMP/3.0/scripts && echo "plug-in installed in the profile GIMP created"'
else
  inside '! test -e /root/.config/GIMP && echo "no GIMP profile touched on Debian 12"'
fi
inside 'ninja -C build uninstall >/dev/null && ! test -e /usr/local/bin/diffuse && ! test -e /usr/local/share/gimp-diffusion && echo "ninja -C build uninstall removed diffuse and its presets"'
say "passed (quick start $((t2 - t1)) s, tests $((t3 - t2)) s, in all $(( $(date +%s) - t0 )) s)"
