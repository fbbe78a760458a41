#!/bin/sh
# GIMP 3 tests of the plug-in, in a Debian 13 root (Debian 12 has no
# GIMP 3).  Needs root (chroot, bind mounts).
#
#   tests/gimp/run-tests.sh [--screenshot] [--asan] [ROOT]
#
# ROOT defaults to .debroot in the source tree and is built when absent
# (tests/gimp/make-root.sh: ~1.5 GB, about a minute with a fast mirror).
# Runs the batch tests (inner-tests.sh: Script-Fu through gimp-console-3.0,
# pixels checked against the engine), the install / uninstall / batch-script
# tests (install-tests.sh) and the GUI tests under Xvfb
# (gui-tests.sh: undo, the dialog's Cancel and OK).  --screenshot also
# writes the dialog's screenshot to docs/dialog.png; --asan repeats the
# batch tests with the plug-in built with AddressSanitizer + UBSan.
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
SHOT=/tmp/gimp-diffusion-tests/gui/dialog.png
ASAN=0
while [ $# -gt 0 ]; do
  case $1 in
    --screenshot) SHOT=/src/docs/dialog.png; shift ;;
    --asan) ASAN=1; shift ;;
    *) break ;;
  esac
done
ROOT=${1:-$SRC/.debroot}

"$SRC/tests/gimp/make-root.sh" "$ROOT"
status=0
"$SRC/tests/gimp/in-root.sh" "$ROOT" sh /src/tests/gimp/inner-tests.sh || status=1
# install / upgrade / uninstall (user and system-wide) and tools/gimp-batch.sh
"$SRC/tests/gimp/in-root.sh" "$ROOT" sh /src/tests/gimp/install-tests.sh || status=1
if [ $ASAN -eq 1 ]; then
  # the batch tests again with the plug-in built with ASan + UBSan (GIMP
  # itself is not instrumented, so leak checks are off)
  DIFFUSE_ROOT_ENV="ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 BUILD=/src/build-gimproot-asan" \
    "$SRC/tests/gimp/in-root.sh" "$ROOT" sh -c '
      cd /src
      test -f build-gimproot-asan/build.ninja ||
        meson setup build-gimproot-asan -Dplugin=enabled --buildtype=debugoptimized \
          -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
      sh tests/gimp/inner-tests.sh' || status=1
fi
# (dbus-daemon's "Failed to set fd limit" warning is harmless)
"$SRC/tests/gimp/in-root.sh" "$ROOT" dbus-run-session -- \
  sh /src/tests/gimp/gui-tests.sh "$SHOT" || status=1
exit $status
