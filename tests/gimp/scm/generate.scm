; plug-in-diffuse-generate: new layers above the current one, named after
; class and seed; grey / RGBA / grey+alpha models; sizes; presets.

; A grey model into an RGB image, two variations.
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model (model "grey-cond") #:class "cross"
                      #:steps 6 #:seed 7 #:count 2))))
  (check (= (vector-length layers) 2) "generate returns 2 layers")
  (check (= (n-layers image) 3) "image has 3 layers")
  (check (= (position image bg) 2) "new layers are above the current one")
  (check (string=? (layer-name (vector-ref layers 0)) "cross (seed 7, 1 of 2)")
         "layer named after class and seed")
  (check (not (true? (car (gimp-drawable-has-alpha (vector-ref layers 0)))))
         "no alpha for a model without alpha")
  (export-layer (vector-ref layers 0) "gen-grey-0.png")
  (export-layer (vector-ref layers 1) "gen-grey-1.png")
  (gimp-image-delete image))

; An RGBA model: a transparent RGBA layer.
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model (model "rgba-sigma") #:steps 4 #:seed 11
                      #:sampler "ddpm"))))
  (check (true? (car (gimp-drawable-has-alpha (vector-ref layers 0)))) "RGBA model gives an alpha layer")
  (check (string=? (layer-name (vector-ref layers 0)) "Sample (seed 11)") "unconditional layer name")
  (export-layer (vector-ref layers 0) "gen-rgba.png")
  (gimp-image-delete image))

; A grey+alpha model in a greyscale image, class by index.
(let* ((image (new-image 32 32 GRAY GRAY-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model (model "ga-3level") #:class "1" #:steps 4 #:seed 3))))
  (check (true? (car (gimp-drawable-is-gray (vector-ref layers 0)))) "grey image gets a grey layer")
  (check (true? (car (gimp-drawable-has-alpha (vector-ref layers 0)))) "grey+alpha model gives alpha")
  (export-layer (vector-ref layers 0) "gen-ga.png")
  (gimp-image-delete image))

; Layer size differs from the model's (16 px, multiples of 2):
; 40x24 is sampled at 26x16 and scaled (the default, "model": one
; subject), or natively with "auto" (fully convolutionally).
(let* ((image (new-image 40 24 RGB RGB-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (native (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model (model "grey-cond") #:class "ring" #:steps 5 #:seed 2
                      #:size-mode "auto")))
       (scaled (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model (model "grey-cond") #:class "ring" #:steps 5 #:seed 2))))
  (check (and (= (width-of (vector-ref native 0)) 40) (= (height-of (vector-ref native 0)) 24))
         "native layer has the layer's size")
  (check (and (= (width-of (vector-ref scaled 0)) 40) (= (height-of (vector-ref scaled 0)) 24))
         "scaled layer has the layer's size")
  (export-layer (vector-ref native 0) "gen-native.png")
  (export-layer (vector-ref scaled 0) "gen-scaled.png")
  (gimp-image-delete image))

; A selection: the new layer covers the selection's bounds.
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (bg (vector-ref (layers-of image) 0)))
  (gimp-image-select-rectangle image CHANNEL-OP-REPLACE 4 6 8 6)
  (let* ((layer (vector-ref (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                                  #:image image #:drawables (vector bg)
                                  #:model (model "grey-cond") #:steps 3 #:seed 1)) 0))
         (offsets (gimp-drawable-get-offsets layer)))
    (check (and (= (width-of layer) 8) (= (height-of layer) 6)) "layer has the selection's size")
    (check (and (= (car offsets) 4) (= (cadr offsets) 6)) "layer sits at the selection")
    (check (string=? (layer-name layer) "none (seed 1)") "empty class = the null class"))
  (gimp-image-delete image))

; A preset overrides the arguments it sets: "draft" = DDIM, 10 steps, eta 1, w 0.
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model (model "grey-cond") #:class "square"
                      #:preset "draft" #:steps 50 #:eta 0.0 #:guidance 3.0 #:sampler "ddpm" #:seed 4))))
  (export-layer (vector-ref layers 0) "gen-preset.png")
  (gimp-image-delete image))

; The defaults (issue 13): the best measured settings, the preset
; balanced (DDIM, 50 steps, eta 1, w 2); an explicit guidance 0 stays 0.
(define (gen-ring-layer image)
  (vector-ref (layers-of image) 0))
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector (gen-ring-layer image))
                      #:model (model "grey-cond") #:class "ring" #:seed 21))))
  (export-layer (vector-ref layers 0) "gen-default.png")
  (gimp-image-delete image))
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector (gen-ring-layer image))
                      #:model (model "grey-cond") #:class "ring" #:seed 21
                      #:preset "balanced"))))
  (export-layer (vector-ref layers 0) "gen-balanced.png")
  (gimp-image-delete image))
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector (gen-ring-layer image))
                      #:model (model "grey-cond") #:class "ring" #:seed 21
                      #:guidance 0.0))))
  (export-layer (vector-ref layers 0) "gen-w0.png")
  (gimp-image-delete image))

; A preset from the user's folder shared with the CLI (inner-tests.sh
; writes "cli-made" there as `diffuse` users do: DDIM, 10 steps, eta 1).
(let* ((image (new-image 16 16 RGB RGB-IMAGE))
       (bg (vector-ref (layers-of image) 0))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector bg)
                      #:model (model "grey-cond") #:class "square"
                      #:preset "cli-made" #:steps 50 #:eta 0.0 #:sampler "ddpm" #:seed 4))))
  (export-layer (vector-ref layers 0) "gen-userpreset.png")
  (gimp-image-delete image))

; No layer at all: the new layer covers the image.
(let* ((image (car (gimp-image-new 16 16 RGB)))
       (layers (car (plug-in-diffuse-generate #:run-mode RUN-NONINTERACTIVE
                      #:image image #:drawables (vector)
                      #:model (model "grey-cond") #:steps 3 #:seed 9))))
  (check (= (n-layers image) 1) "generate into an empty image")
  (gimp-image-delete image))
