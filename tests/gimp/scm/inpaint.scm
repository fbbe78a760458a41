; plug-in-diffuse-inpaint: the selection regenerated with its surroundings
; as context; unselected pixels unchanged; a feathered selection; and the
; seamless option (tile) of generate.  run-tests.sh compares the pixels
; with `diffuse inpaint` / `diffuse sample --tile` on the same files.

(define (inpaint image . args)
  (let ((layer (vector-ref (car (gimp-image-get-selected-layers image)) 0)))
    (apply plug-in-diffuse-inpaint
           (append (list #:run-mode RUN-NONINTERACTIVE #:image image
                         #:drawables (vector layer))
                   args))
    layer))

; The selection as a grey PNG (0 = unselected), for the pixel checks and
; as the CLI's --mask.
(define (export-selection image file)
  (let* ((ch (car (gimp-selection-save image)))
         (mask (car (gimp-image-new (car (gimp-image-get-width image))
                                    (car (gimp-image-get-height image)) GRAY)))
         (layer (car (gimp-layer-new-from-drawable ch mask))))
    (gimp-image-insert-layer mask layer 0 0)
    (export-image mask file)
    (gimp-image-delete mask)
    (gimp-image-remove-channel image ch)))

(define (fails? thunk) (eq? (catch 'failed (thunk) 'ran) 'failed))

; A hard selection (the right half) of a grey image, a class, exact
; arithmetic: the same pixels as diffuse inpaint with that mask.
(let ((image (load-image "in-grey.png")))
  (gimp-image-select-rectangle image CHANNEL-OP-REPLACE 8 0 8 16)
  (inpaint image #:model (model "grey-cond") #:class "square" #:steps 6
           #:seed 7 #:precision "fp32")
  (check (= (n-layers image) 1) "inpaint adds no layer")
  (check (true? (car (gimp-image-undo-is-enabled image))) "undo still enabled")
  (export-image image "inp-grey.png")
  (export-selection image "inp-grey-mask.png")
  (gimp-image-delete image))

; A feathered selection on an RGB layer, with resampling: a soft edge;
; the pixels outside the feathered selection stay exactly as they were.
(let ((image (load-image "in-rgb.png")))
  (gimp-image-select-ellipse image CHANNEL-OP-REPLACE 5 4 7 8)
  (gimp-selection-feather image 3)
  (inpaint image #:model (model "rgb-uncond") #:steps 6 #:seed 5
           #:resample-count 2 #:resample-jump 2 #:margin 4 #:precision "fp32")
  (export-image image "inp-feather.png")
  (export-selection image "inp-feather-mask.png")
  (gimp-image-delete image))

; Without a selection there is nothing to inpaint: an error, no change.
(let ((image (load-image "in-rgb.png")))
  (gimp-selection-none image)
  (check (fails? (lambda () (inpaint image #:model (model "rgb-uncond") #:steps 2)))
         "inpaint without a selection fails")
  (export-image image "inp-noselection.png")
  (gimp-image-delete image))

; Seamless tiles: generate with tile "both" (= diffuse sample --tile both).
(let* ((image (new-image 16 16 GRAY GRAY-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model (model "grey-cond") #:class "cross"
                      #:steps 5 #:seed 3 #:tile "both" #:precision "fp32"))))
  (export-layer (vector-ref layers 0) "gen-tile.png")
  (gimp-image-delete image))
