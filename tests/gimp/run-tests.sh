#!/bin/sh
# GIMP 3 tests of the plug-in, in a Debian 13 root (Debian 12 has no
# GIMP 3).  Needs root (chroot, bind mounts).
#
#   tests/gimp/run-tests.sh [--screenshot] [ROOT]
#
# ROOT defaults to .debroot in the source tree and is built when absent
# (tests/gimp/make-root.sh: ~1.5 GB, about a minute with a fast mirror).
# Runs the batch tests (inner-tests.sh: Script-Fu through gimp-console-3.0,
# pixels checked against the engine) and the GUI tests under Xvfb
# (gui-tests.sh: undo, the dialog's Cancel and OK).  --screenshot also
# writes the dialog's screenshot to docs/dialog.png.
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
SHOT=/tmp/gimp-diffusion-tests/gui/dialog.png
if [ "${1:-}" = "--screenshot" ]; then
  SHOT=/src/docs/dialog.png
  shift
fi
ROOT=${1:-$SRC/.debroot}

"$SRC/tests/gimp/make-root.sh" "$ROOT"
status=0
"$SRC/tests/gimp/in-root.sh" "$ROOT" sh /src/tests/gimp/inner-tests.sh || status=1
# (dbus-daemon's "Failed to set fd limit" warning is harmless)
"$SRC/tests/gimp/in-root.sh" "$ROOT" dbus-run-session -- \
  sh /src/tests/gimp/gui-tests.sh "$SHOT" || status=1
exit $status
