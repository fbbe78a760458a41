#!/bin/sh
# Quality of a training export at the targets' settings (issue 14), merged
# into models/eval/<data>-progress.md by training step:
#   tools/eval/track.sh fashion|emoji MODEL [DIFFUSE] [PAUSE_FILE]
# fashion: DDIM 50, 50 samples per class, (w = 1, eta = 0), (w = 0,
#          eta = 0), (w = 1, eta = 1);
# emoji:   DDIM 50, 30 samples per category, eta = 1, w = 2 (the
#          recommended settings), FID from the first 8 per category.
# MODEL is e.g. a periodic export of tools/train/train.py (--export); its
# training_step labels the rows.  Results: models/eval/<data>-track-*.json
# (the latest) and <data>-progress.json/.md (all steps).  One thread,
# nice 19; with PAUSE_FILE it waits while that file exists.
set -e
cd "$(dirname "$0")/../.."
DATA=$1
MODEL=$2
DIFFUSE=${3:-build/cli/diffuse}
PAUSE=${4:-}
[ -f "$MODEL" ] || { echo "track.sh: no model file '$MODEL'" >&2; exit 1; }
[ -x "$DIFFUSE" ] || { echo "track.sh: no diffuse binary '$DIFFUSE'" >&2; exit 1; }
run() {  # n w eta [extra]: writes models/eval/$DATA-track-w$w-eta$eta.json
  out="models/eval/$DATA-track-w$2-eta$3.json"
  n=$1; w=$2; eta=$3; shift 3
  nice -n 19 /usr/bin/python3 tools/eval/evaluate.py --model "$MODEL" \
    --data "$DATA" --n-per-class "$n" --steps 50 --eta "$eta" --guidance "$w" \
    --diffuse "$DIFFUSE" --threads 1 ${PAUSE:+--pause-file "$PAUSE"} \
    --json "$out.tmp" "$@" > /dev/null
  mv "$out.tmp" "$out"
  echo "$out"
}
case "$DATA" in
  fashion)
    f1=$(run 50 1 0)
    f2=$(run 50 0 0)
    f3=$(run 50 1 1)
    files="$f1 $f2 $f3" ;;
  emoji)
    files=$(run 30 2 1 --fid-n-per-class 8) ;;
  *) echo "track.sh: data is fashion or emoji" >&2; exit 1 ;;
esac
/usr/bin/python3 tools/eval/progress.py --data "$DATA" $files
