; Classifier guidance: generate with the shipped fashion classifier, by
; path and by name (inner-tests.sh compares the pixels with `diffuse
; sample --classifier`), and the mix-ups refused with a clear message.

(define shipped "/src/models/")
(define (shipped-model name) (string-append shipped name ".safetensors"))
(define (fails? thunk) (eq? (catch 'failed (thunk) 'ran) 'failed))

; By path, scale 1: a Trouser, steered by the classifier.
(let* ((image (new-image 32 32 GRAY GRAY-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model (shipped-model "fashion") #:class "Trouser"
                      #:classifier (shipped-model "fashion-classifier")
                      #:classifier-scale 1.0
                      #:steps 5 #:eta 1.0 #:seed 3 #:precision "fp32"))))
  (check (= (vector-length layers) 1) "generate with a classifier returns a layer")
  (check (string=? (layer-name (vector-ref layers 0)) "Trouser (seed 3)")
         "layer named after the class")
  (export-layer (vector-ref layers 0) "gen-clf-1.png")
  (gimp-image-delete image))

; By name (the model folders: DIFFUSE_MODELS_PATH holds the shipped
; models here), scale 4.
(let* ((image (new-image 32 32 GRAY GRAY-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model "fashion" #:class "Bag"
                      #:classifier "fashion-classifier" #:classifier-scale 4.0
                      #:steps 5 #:eta 1.0 #:seed 8 #:precision "fp32"))))
  (export-layer (vector-ref layers 0) "gen-clf-4.png")
  (gimp-image-delete image))

; "none": no classifier guidance (the scale is then unused).
(let* ((image (new-image 32 32 GRAY GRAY-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model "fashion" #:class "Bag"
                      #:classifier "none" #:classifier-scale 4.0
                      #:steps 5 #:eta 1.0 #:seed 8 #:precision "fp32"))))
  (export-layer (vector-ref layers 0) "gen-clf-none.png")
  (gimp-image-delete image))

; Mix-ups: each a clear error, before any sampling, the image unchanged.
(let* ((image (new-image 32 32 GRAY GRAY-IMAGE))
       (bg (vector-ref (layers-of image) 0)))
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector bg) #:model (shipped-model "fashion-classifier")
                     #:class "Trouser" #:steps 2)))
         "a classifier given as the model fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-img2img #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector bg) #:model "fashion-classifier" #:steps 2)))
         "a classifier's name given as the model fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector bg) #:model "fashion" #:class "Trouser"
                     #:classifier (shipped-model "fashion") #:steps 2)))
         "a diffusion model given as the classifier fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector bg) #:model "fashion" #:class "Trouser"
                     #:classifier "emoji-classifier" #:steps 2)))
         "a classifier for another model fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector bg) #:model "fashion"
                     #:classifier "fashion-classifier" #:steps 2)))
         "classifier guidance without a class fails")
  (check (fails? (lambda ()
                   (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE #:image image
                     #:drawables (vector bg) #:model "fashion" #:class "Trouser"
                     #:classifier "giraffe-classifier" #:steps 2)))
         "an unknown classifier name fails")
  (check (= (n-layers image) 1) "no layer added after the errors")
  (gimp-image-delete image))
