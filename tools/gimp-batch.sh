#!/bin/bash
# Run the GIMP plug-in over every image in a folder, headless, through
# gimp-console-3.0 and Script-Fu, and write the results as PNG into
# another folder:
#
#   tools/gimp-batch.sh [OPTIONS] IN_DIR OUT_DIR
#
#   --mode img2img|generate  img2img (default): re-imagine each image;
#                            generate: a new sample sized to each image
#   --model NAME|FILE        a model name (as in the plug-in's model folders)
#                            or a .safetensors file (default: the first found)
#   --preset NAME            a preset (its values override the options below)
#   --class C                class name or index
#   --classifier NAME|FILE   classifier guidance: a classifier name (as in
#                            the model folders) or file; none by default
#   --classifier-scale S     how hard the classifier steers (default 1)
#   --strength S             img2img strength, 0..1
#   --steps N, --seed N, --guidance W, --eta E
#
# Inputs: every *.png *.jpg *.jpeg *.tif *.tiff *.webp *.bmp *.gif *.xcf
# in IN_DIR (any format GIMP loads; layers are merged first).  Output:
# OUT_DIR/NAME.png for each IN_DIR/NAME.EXT.  Every image gets the same
# seed, so one image gives the same result alone or in a folder.  Uses the
# plug-in installed in your GIMP 3 profile (tools/install-plugin.sh) or
# system-wide.  Each output is written to a temporary folder in OUT_DIR and
# moved into place once GIMP exported it; on an error the images done so
# far are kept, the message names the file that failed, and the exit
# status is 1.
set -euo pipefail

MODE=img2img
args=()
die () { printf 'gimp-batch: %s\n' "$*" >&2; exit 1; }
usage () { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

# Script-Fu string literal
scm_str () {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}
number () {   # number OPTION VALUE: a plain decimal number
  [[ $2 =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$1 wants a number, not '$2'"
}
while [ $# -gt 0 ]; do
  case $1 in
    --mode) MODE=${2:?}; shift ;;
    --model|--preset|--class|--classifier)
      [ $# -ge 2 ] || die "$1 needs a value"
      args+=("#:${1#--}" "$(scm_str "$2")"); shift ;;
    --strength|--guidance|--eta|--classifier-scale)
      [ $# -ge 2 ] || die "$1 needs a value"
      number "$1" "$2"; args+=("#:${1#--}" "$2"); shift ;;
    --steps|--seed)
      [ $# -ge 2 ] || die "$1 needs a value"
      [[ $2 =~ ^[0-9]+$ ]] || die "$1 wants a whole number, not '$2'"
      args+=("#:${1#--}" "$2"); shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) break ;;
  esac
  shift
done
[ $# -eq 2 ] || { usage >&2; exit 2; }
IN=$1
OUT=$2
case $MODE in
  img2img|generate) ;;
  *) die "--mode is img2img or generate, not '$MODE'" ;;
esac
if [ $MODE = generate ]; then
  for a in "${args[@]}"; do
    [ "$a" = "#:strength" ] && die "--strength is for --mode img2img"
  done
fi
[ -d "$IN" ] || die "input folder $IN does not exist"
[ -d "$OUT" ] || die "output folder $OUT does not exist (mkdir it first)"
[ -w "$OUT" ] || die "output folder $OUT is not writable"
[ "$(cd "$IN" && pwd -P)" != "$(cd "$OUT" && pwd -P)" ] ||
  die "the output folder must not be the input folder"
command -v gimp-console-3.0 >/dev/null || die "gimp-console-3.0 not found (Debian 13: apt install gimp)"
IN=$(cd "$IN" && pwd)
OUT=$(cd "$OUT" && pwd)

shopt -s nullglob nocaseglob
files=()
for f in "$IN"/*.{png,jpg,jpeg,tif,tiff,webp,bmp,gif,xcf}; do
  [ -f "$f" ] || continue
  case $f in *$'\n'*) die "file name with a newline: $f" ;; esac
  files+=("$f")
done
shopt -u nullglob nocaseglob
[ ${#files[@]} -gt 0 ] || die "no images in $IN"
# two inputs that would give the same output name
dups=$(for f in "${files[@]}"; do b=${f##*/}; echo "${b%.*}"; done | sort | uniq -d)
[ -z "$dups" ] || die "several inputs would write the same output: $(echo $dups).png"

TMP=$(mktemp -d "$OUT/.gimp-batch.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
SCM=$TMP/batch.scm
LOG=$TMP/gimp.log

# ---- the Script-Fu program: one file, run by one -b (each -b starts a
# fresh interpreter, so definitions never carry from one -b to the next)
{
  cat <<'SCM'
(define (batch-merge image)
  (if (> (vector-length (car (gimp-image-get-layers image))) 1)
      (gimp-image-merge-visible-layers image CLIP-TO-IMAGE))
  (vector-ref (car (gimp-image-get-layers image)) 0))
(define (batch-export-layer layer file)
  (let* ((src (car (gimp-item-get-image layer)))
         (image (car (gimp-image-new (car (gimp-drawable-get-width layer))
                                     (car (gimp-drawable-get-height layer))
                                     (car (gimp-image-get-base-type src)))))
         (copy (car (gimp-layer-new-from-drawable layer image))))
    (gimp-image-insert-layer image copy 0 0)
    (gimp-layer-set-offsets copy 0 0)
    (file-png-export #:run-mode RUN-NONINTERACTIVE #:image image #:file file
                     #:save-transparent TRUE)
    (gimp-image-delete image)))
SCM
  i=0
  for f in "${files[@]}"; do
    b=${f##*/}
    name=${b%.*}.png
    tmp_out=$TMP/$i.png
    printf '(gimp-message %s)\n' "$(scm_str "gimp-batch: start $b")"
    printf '(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE %s)))\n' "$(scm_str "$f")"
    printf '       (layer (batch-merge image)))\n'
    if [ $MODE = img2img ]; then
      printf '  (plug-in-diffuse-img2img #:run-mode RUN-NONINTERACTIVE #:image image\n'
      printf '    #:drawables (vector layer) %s)\n' "${args[*]}"
      printf '  (batch-export-layer layer %s)\n' "$(scm_str "$tmp_out")"
    else
      printf '  (batch-export-layer (vector-ref (car (plug-in-diffuse-generate\n'
      printf '      #:run-mode RUN-NONINTERACTIVE #:image image #:drawables (vector layer)\n'
      printf '      #:count 1 %s)) 0) %s)\n' "${args[*]}" "$(scm_str "$tmp_out")"
    fi
    printf '  (gimp-image-delete image))\n'
    printf '(gimp-message %s)\n' "$(scm_str "gimp-batch: done $i")"
    i=$((i + 1))
  done
} >"$SCM"

printf 'gimp-batch: %s over %d images in %s\n' "$MODE" ${#files[@]} "$IN"
set +e
gimp-console-3.0 -i --quit --batch-interpreter=plug-in-script-fu-eval \
  -b "(load $(scm_str "$SCM"))" >"$LOG" 2>&1
rc=$?
set -e

# move each finished image into place (rename in the same folder)
done_n=0
i=0
for f in "${files[@]}"; do
  b=${f##*/}
  if grep -qx "gimp-batch: done $i\|.*: gimp-batch: done $i" "$LOG" && [ -s "$TMP/$i.png" ]; then
    mv -f "$TMP/$i.png" "$OUT/${b%.*}.png"
    printf 'gimp-batch: %s -> %s\n' "$b" "$OUT/${b%.*}.png"
    done_n=$((done_n + 1))
  elif [ -z "${failed:-}" ]; then
    failed=$b
  fi
  i=$((i + 1))
done
if [ $rc -ne 0 ] || [ $done_n -ne ${#files[@]} ]; then
  {
    printf 'gimp-batch: FAILED at %s (gimp-console-3.0 exit status %d); %d of %d done\n' \
      "${failed:-?}" $rc $done_n ${#files[@]}
    printf 'gimp-batch: GIMP said:\n'
    grep -v "GeglBuffers leaked\|Broken pipe\|cannot open display\|^$" "$LOG" | tail -n 25 | sed 's/^/  | /'
  } >&2
  exit 1
fi
printf 'gimp-batch: %d images written to %s\n' $done_n "$OUT"
