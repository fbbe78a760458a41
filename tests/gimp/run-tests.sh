#!/bin/sh
# GIMP 3 batch tests of the plug-in, in a Debian 13 root (Debian 12 has no
# GIMP 3).  Usage: tests/gimp/run-tests.sh [ROOT]   (needs root)
# ROOT defaults to .debroot in the source tree; it is built when absent
# (tests/gimp/make-root.sh, ~1.5 GB, about a minute with a fast mirror).
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${1:-$SRC/.debroot}

"$SRC/tests/gimp/make-root.sh" "$ROOT"
exec "$SRC/tests/gimp/in-root.sh" "$ROOT" sh /src/tests/gimp/inner-tests.sh
