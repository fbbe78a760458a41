; Bad input: a clear error from the plug-in, and the image left as it was.

(define (fails? thunk) (eq? (catch 'failed (thunk) 'ran) 'failed))

; A bad model path: error, no new layer, pixels untouched.
(let* ((image (load-image "in-rgb.png"))
       (layer (vector-ref (layers-of image) 0)))
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model "/nonexistent/model.safetensors")))
         "generate with a bad model path fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-img2img #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model "/nonexistent/model.safetensors")))
         "img2img with a bad model path fails")
  (check (= (n-layers image) 1) "no layer added after the error")
  (export-image image "err-badmodel.png")
  (gimp-image-delete image))

; A file that is not a model.
(let* ((image (load-image "in-rgb.png"))
       (layer (vector-ref (layers-of image) 0)))
  (check (fails? (lambda ()
                   (plug-in-diffuse-img2img #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model (string-append in-dir "in-rgb.png"))))
         "img2img with a PNG as model fails")
  (export-image image "err-notmodel.png")
  (gimp-image-delete image))

; An unknown class, and bad guidance values for the sweep.
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (layer (vector-ref (layers-of image) 0)))
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model (model "grey-cond") #:class "giraffe")))
         "unknown class fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-guidance-sweep #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model (model "grey-cond")
                     #:guidance-values "1,two")))
         "bad guidance list fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model (model "grey-cond") #:preset "no-such-preset")))
         "unknown preset fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-img2img #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model (model "grey-cond") #:strength 0.0)))
         "img2img with strength 0 fails")
  (check (= (n-layers image) 1) "no layer added after the errors")
  (gimp-image-delete image))

; A model without a null class (ga-3level): the default guidance runs as
; 0 (generate.scm), but a guidance given, or a preset's, is an error.
(let* ((image (new-image 32 32 GRAY GRAY-IMAGE))
       (layer (vector-ref (layers-of image) 0)))
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model (model "ga-3level") #:class "1"
                     #:guidance 3.0 #:steps 2)))
         "guidance 3 with a model without a null class fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model (model "ga-3level") #:class "1"
                     #:preset "balanced")))
         "the preset balanced (w 2) with a model without a null class fails")
  (check (not (fails? (lambda ()
                        (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                          #:drawables (vector layer) #:model (model "ga-3level") #:class "1"
                          #:guidance 0.0 #:steps 2))))
         "guidance 0 with a model without a null class runs")
  (gimp-image-delete image))

; Size mode "layer": 16x16 runs, an odd width is refused.
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (layer (vector-ref (layers-of image) 0)))
  (check (not (fails? (lambda ()
                        (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                          #:drawables (vector layer) #:model (model "grey-cond")
                          #:size-mode "layer" #:steps 2))))
         "size-mode layer accepts 16x16")
  (gimp-image-delete image))
(let* ((image (new-image 15 16 RGB RGB-IMAGE))
       (layer (vector-ref (layers-of image) 0)))
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model (model "grey-cond") #:size-mode "layer")))
         "size-mode layer refuses 15x16")
  (gimp-image-delete image))

; Indexed images get a clear message.
(let* ((image (car (gimp-image-new 16 16 INDEXED)))
       (layer (car (gimp-layer-new image "bg" 16 16 INDEXED-IMAGE 100 LAYER-MODE-NORMAL))))
  (gimp-image-insert-layer image layer 0 0)
  (check (fails? (lambda ()
                   (plug-in-diffuse-img2img #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model (model "grey-cond"))))
         "img2img on an indexed image fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector layer) #:model (model "grey-cond"))))
         "generate on an indexed image fails")
  (gimp-image-delete image))
