; Helpers shared by the GIMP batch tests (Script-Fu, GIMP 3.0).
; run-tests.sh loads this file first; outputs go to out-dir, where the
; shell side checks them as pixels.

(define out-dir "/tmp/gimp-diffusion-tests/out/")
(define in-dir "/tmp/gimp-diffusion-tests/in/")
(define golden "/src/tests/data/golden/")
(define (model name) (string-append golden "forward-" name ".safetensors"))

; Script-Fu 3.0 gives booleans as #t/#f or as 0/1 depending on the call.
(define (true? v)
  (cond ((boolean? v) v)
        ((number? v) (not (= v 0)))
        (else #t)))

(define (check ok what)
  (if (not ok)
      (error (string-append "CHECK FAILED: " what))
      (gimp-message (string-append "ok: " what))))

(define (layers-of image) (car (gimp-image-get-layers image)))
(define (n-layers image) (vector-length (layers-of image)))
(define (layer-name layer) (car (gimp-item-get-name layer)))
(define (position image item) (car (gimp-image-get-item-position image item)))
(define (width-of d) (car (gimp-drawable-get-width d)))
(define (height-of d) (car (gimp-drawable-get-height d)))

(define (string-prefix? prefix s)
  (and (>= (string-length s) (string-length prefix))
       (string=? prefix (substring s 0 (string-length prefix)))))

(define (new-image w h base layer-type)
  (let* ((image (car (gimp-image-new w h base)))
         (layer (car (gimp-layer-new image "bg" w h layer-type 100 LAYER-MODE-NORMAL))))
    (gimp-image-insert-layer image layer 0 0)
    (gimp-drawable-fill layer FILL-WHITE)
    image))

(define (load-image file)
  (car (gimp-file-load RUN-NONINTERACTIVE (string-append in-dir file))))

(define (export-image image file)
  (file-png-export #:run-mode RUN-NONINTERACTIVE #:image image
                   #:file (string-append out-dir file) #:save-transparent TRUE))

; Export one layer alone, at its own size.
(define (export-layer layer file)
  (let* ((src (car (gimp-item-get-image layer)))
         (image (car (gimp-image-new (width-of layer) (height-of layer)
                                     (car (gimp-image-get-base-type src)))))
         (copy (car (gimp-layer-new-from-drawable layer image))))
    (gimp-image-insert-layer image copy 0 0)
    (gimp-layer-set-offsets copy 0 0)
    (export-image image file)
    (gimp-image-delete image)))
