; plug-in-diffuse-guidance-sweep: a labelled contact sheet.
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (layer (vector-ref (layers-of image) 0))
       (sheet (car (plug-in-diffuse-guidance-sweep #:run-mode RUN-NONINTERACTIVE
                     #:image image #:drawables (vector layer)
                     #:model (model "grey-cond") #:class "ring" #:seed 5 #:steps 5
                     #:guidance-values "0, 1, 3")))
       (layers (layers-of sheet))
       (n-text 0))
  ; background + 3 cells + 3 labels
  (check (= (vector-length layers) 7) "sheet has background, 3 cells and 3 labels")
  (let loop ((i 0))
    (if (< i (vector-length layers))
        (begin
          (if (true? (car (gimp-item-id-is-text-layer (vector-ref layers i))))
              (set! n-text (+ n-text 1)))
          (loop (+ i 1)))))
  (check (= n-text 3) "3 text labels")
  (check (string=? (layer-name (vector-ref layers 1)) "ring, seed 5, guidance 3")
         "cells named with their guidance")
  (gimp-image-flatten sheet)
  (export-image sheet "sweep.png")
  (gimp-image-delete sheet)
  (gimp-image-delete image))

; as-layers: the results go into the current image instead, one layer per
; value named by it, sized to the image (sampled at 16 px, scaled to 32),
; the first value on top.
(let* ((image (new-image 32 32 RGB RGB-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (ret (car (plug-in-diffuse-guidance-sweep #:run-mode RUN-NONINTERACTIVE
                   #:image image #:drawables (vector bg)
                   #:model (model "grey-cond") #:class "ring" #:seed 5 #:steps 5
                   #:guidance-values "0, 1, 3" #:as-layers TRUE)))
       (layers (layers-of image)))
  (check (= ret image) "as-layers returns the current image")
  (check (= (vector-length layers) 4) "as-layers: the background and 3 layers")
  (check (and (string=? (layer-name (vector-ref layers 0)) "w = 0")
              (string=? (layer-name (vector-ref layers 1)) "w = 1")
              (string=? (layer-name (vector-ref layers 2)) "w = 3")
              (string=? (layer-name (vector-ref layers 3)) "bg"))
         "layers named by their value, first value on top, above the background")
  (check (and (= (width-of (vector-ref layers 0)) 32) (= (height-of (vector-ref layers 0)) 32))
         "layers have the image's size")
  (export-layer (vector-ref layers 0) "sweep-layer-0.png")
  (export-layer (vector-ref layers 1) "sweep-layer-1.png")
  (export-layer (vector-ref layers 2) "sweep-layer-3.png")
  (gimp-image-delete image))
