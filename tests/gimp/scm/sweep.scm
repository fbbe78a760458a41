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
