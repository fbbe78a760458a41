; plug-in-diffuse-img2img: strength, selection bounds, grey / RGB / RGBA
; layers.  Inputs come from run-tests.sh (ImageMagick gradients).

(define (img2img image . args)
  (let ((layer (vector-ref (car (gimp-image-get-selected-layers image)) 0)))
    (apply plug-in-diffuse-img2img
           (append (list #:run-mode RUN-NONINTERACTIVE #:image image
                         #:drawables (vector layer))
                   args))
    layer))

; RGB layer, RGB model, two strengths.
(let ((image (load-image "in-rgb.png")))
  (img2img image #:model (model "rgb-uncond") #:strength 0.5 #:steps 10 #:seed 3)
  (check (= (n-layers image) 1) "img2img adds no layer")
  (export-image image "i2i-rgb.png")
  (gimp-image-delete image))
(let ((image (load-image "in-rgb.png")))
  (img2img image #:model (model "rgb-uncond") #:strength 0.1 #:steps 20 #:seed 3)
  (export-image image "i2i-rgb-s01.png")
  (gimp-image-delete image))
(let ((image (load-image "in-rgb.png")))
  (img2img image #:model (model "rgb-uncond") #:strength 0.9 #:steps 20 #:seed 3)
  (export-image image "i2i-rgb-s09.png")
  (gimp-image-delete image))

; A selection: only its bounds are re-imagined (rows 0..3 stay).
(let ((image (load-image "in-rgb.png")))
  (gimp-image-select-rectangle image CHANNEL-OP-REPLACE 4 4 8 8)
  (img2img image #:model (model "rgb-uncond") #:strength 0.6 #:steps 10 #:seed 5)
  (export-image image "i2i-sel.png")
  (gimp-image-delete image))

; RGBA layer, RGB model: the layer keeps its own alpha.
(let ((image (load-image "in-rgba.png")))
  (img2img image #:model (model "rgb-uncond") #:strength 0.5 #:steps 10 #:seed 3)
  (export-image image "i2i-rgba.png")
  (gimp-image-delete image))

; Greyscale image, grey class-conditional model, guidance.
(let ((image (load-image "in-grey.png")))
  (check (= (car (gimp-image-get-base-type image)) GRAY) "input is greyscale")
  (img2img image #:model (model "grey-cond") #:class "square" #:guidance 1.5
           #:strength 0.7 #:steps 8 #:seed 8)
  (check (= (car (gimp-image-get-base-type image)) GRAY) "still greyscale")
  (export-image image "i2i-grey.png")
  (gimp-image-delete image))

; RGB layer without alpha, RGBA model: alpha is added.
(let* ((image (load-image "in-rgb.png"))
       (layer (img2img image #:model (model "rgba-sigma") #:strength 0.5 #:steps 6 #:seed 3)))
  (check (true? (car (gimp-drawable-has-alpha layer))) "alpha added for an RGBA model")
  (export-image image "i2i-rgb-rgbamodel.png")
  (gimp-image-delete image))

; A 40x24 layer with "model" size: sampled at 26x16, scaled both ways.
(let ((image (load-image "in-rgb-40x24.png")))
  (img2img image #:model (model "rgb-uncond") #:strength 0.5 #:steps 10 #:seed 3
           #:size-mode "model")
  (export-image image "i2i-scaled.png")
  (gimp-image-delete image))
