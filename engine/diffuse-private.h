/* Internals shared between engine files (libvips-style double underscore).
 * Not installed; the plug-in and CLI never include this. Tests may. */
#ifndef DIFFUSE_PRIVATE_H
#define DIFFUSE_PRIVATE_H

#include <sys/stat.h>

#include "diffuse.h"

G_BEGIN_DECLS

/* ---- errors.c --------------------------------------------------------- */

/* Sets a DIFFUSE_ERROR of the given code, "NAME: message" (a file's or
 * model's name first); always returns FALSE. */
gboolean diffuse__set_named_errorv (GError **error, gint code, const char *name,
                                    const char *format, va_list args)
    G_GNUC_PRINTF (4, 0);

/* Sets a DIFFUSE_ERROR_INVALID (a setting or argument out of range);
 * always returns FALSE. */
gboolean diffuse__invalid (GError **error, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

/* ---- files.c ----------------------------------------------------------- */

/* Opens path for reading without blocking on a FIFO, and refuses anything
 * but a regular file (FIFO, device, socket, directory: a clear GError).
 * Returns a blocking file descriptor and its size, or -1. */
gint diffuse__open_regular (const char *path, guint64 *out_size,
                            GError **error);
/* Reads exactly n bytes (path names the file in messages). */
gboolean diffuse__read_exact (gint fd, void *buf, gsize n, const char *path,
                              GError **error);

/* ---- image-io.c: the loaders on bytes in memory (fuzzing, tests) ------- */

float *diffuse__png_load_bytes (const guint8 *bytes, gsize len, gint channels,
                                gint *out_channels, gint *out_height,
                                gint *out_width, GError **error);
float *diffuse__npy_load_bytes (const guint8 *bytes, gsize len, gint *out_ndim,
                                gint64 out_shape[4], GError **error);

/* ---- safetensors.c: bounds-checked parser ---------------------------- */

typedef enum
{
  DIFFUSE__DTYPE_F32,
  DIFFUSE__DTYPE_F16,
  DIFFUSE__DTYPE_BF16,
  DIFFUSE__DTYPE_COUNT
} DiffuseDtype;

typedef struct
{
  gchar *name;
  DiffuseDtype dtype;
  gint ndim; /* 0..4 */
  gint64 shape[4];
  gint64 n_elements;
  const guint8 *raw; /* points into the mapped file */
  const float *data; /* F32 view: into the map, or into a converted copy */
} DiffuseTensorInfo;

typedef struct _DiffuseSafetensors DiffuseSafetensors;

/* Maps the file, parses and checks the header: every length, offset and
 * element count against the file size, with overflow checks. Non-F32
 * tensors are converted to F32 once here. */
DiffuseSafetensors *diffuse__safetensors_open (const char *path,
                                               GError **error);
/* The same checks without converting any tensor (data stays NULL):
 * only the header's pages are read (the configuration of a model file,
 * diffuse_model_file_read_config). */
DiffuseSafetensors *diffuse__safetensors_open_header (const char *path,
                                                      GError **error);
/* Same, from memory the caller keeps alive (fuzzing, tests). */
DiffuseSafetensors *diffuse__safetensors_open_bytes (const guint8 *bytes,
                                                     gsize len, GError **error);
/* The file's fstat () at open; NULL when opened from bytes. */
const struct stat *diffuse__safetensors_get_stat (const DiffuseSafetensors *st);
/* The whole file as mapped (or the caller's bytes). */
gboolean diffuse__safetensors_get_bytes (const DiffuseSafetensors *st,
                                         const guint8 **bytes, gsize *len);

/* ---- scratch.c: large scratch on huge pages ---------------------------- */

/* n_bytes of uninitialised memory (NULL when there is not enough), on
 * transparent huge pages where possible; free with diffuse__scratch_free. */
void *diffuse__scratch_alloc (gsize n_bytes);
void diffuse__scratch_free (void *p);

/* ---- model-cache.c: what a first load learns for the next -------------- */

/* The key of the file st was opened from (its identity, times, header
 * and samples of its data, the engine version); FALSE when opened from
 * bytes. */
gboolean diffuse__model_cache_key (const DiffuseSafetensors *st,
                                   guint8 key[32]);
/* Whether a good record says the file of this key holds finite weights
 * only; FALSE when the cache is off or the record is missing or bad. */
gboolean diffuse__model_cache_has (const guint8 key[32]);
/* Writes that record, atomically; failures are ignored. */
void diffuse__model_cache_add (const guint8 key[32]);
/* model.c: whether this model's load skipped the scan on a record. */
gboolean diffuse__model_scan_was_cached (const DiffuseModel *model);
/* Whether bytes are the good record for key (tests, fuzzing). */
gboolean diffuse__model_cache_record_valid (const guint8 *bytes, gsize len,
                                            const guint8 key[32]);
void diffuse__safetensors_free (DiffuseSafetensors *st);
/* Drops the process's resident pages of the mapped file inside [p, p + n)
 * (memory only: a later read gets the same bytes); a no-op outside it. */
void diffuse__safetensors_release (const DiffuseSafetensors *st, const void *p,
                                   gsize n);
/* NULL when absent. */
const DiffuseTensorInfo *diffuse__safetensors_get (const DiffuseSafetensors *st,
                                                   const char *name);
/* The tensor called name, which must have exactly the given shape (ndim
 * entries of shape); else NULL and a DIFFUSE_ERROR_MODEL that names
 * file_name, the tensor, the expected and the actual shape. */
const DiffuseTensorInfo *diffuse__safetensors_get_shaped (
    const DiffuseSafetensors *st, const char *file_name, const char *name,
    gint ndim, const gint64 *shape, GError **error);
guint diffuse__safetensors_get_n_tensors (const DiffuseSafetensors *st);
/* Tensor 0..n_tensors-1, in header order. */
const DiffuseTensorInfo *
diffuse__safetensors_get_nth (const DiffuseSafetensors *st, guint index);
/* __metadata__ string value, NULL when absent. */
const char *diffuse__safetensors_get_metadata (const DiffuseSafetensors *st,
                                               const char *key);
/* Check untrusted JSON before json-glib parses it (its parser recurses
 * per nesting level): NULL when text holds only plain JSON tokens nested
 * at most max_depth deep, else a short reason. */
const char *diffuse__json_check (const char *text, gsize n, gint max_depth);

/* ---- settings-table.c ------------------------------------------------ */

/* Check the settings whose flags include all of need
 * and none of skip; fill the table's defaults into params. */
gboolean diffuse__settings_check_flags (const DiffuseSampleParams *params,
                                        DiffuseSettingFlags need,
                                        DiffuseSettingFlags skip,
                                        GError **error);
void diffuse__settings_init (DiffuseSampleParams *params);

/* ---- schedule.c ------------------------------------------------------ */

/* The schedule for DiffuseSampleParams.steps when no respacing string is
 * given: guided-diffusion's "N" section, except that N = 1 keeps t = T−1
 * (sample.c's schedule_for takes "ddimN" instead for classifier-guided
 * DDIM). */
DiffuseSchedule *diffuse__schedule_new_steps (DiffuseScheduleKind kind, gint T,
                                              gint steps, GError **error);
/* The stride of guided-diffusion's "ddimN" respacing: the smallest i in
 * 1..T−1 with ceil(T / i) = n steps; 0 when no integer stride gives n. */
gint diffuse__ddim_stride (gint T, gint n);

/* ---- inpaint.c: the masked reverse process ----------------------------- */

/* The noise stream of the kept pixels' forward noise on arriving at level
 * L after v network calls there: DIFFUSE__STREAM_KEPT0 + L + v·2³²
 * (sampler.c). */
#define DIFFUSE__STREAM_KEPT0 (G_GUINT64_CONSTANT (1) << 49)

/* Mask and resampling fields of params against a schedule of n_steps
 * kept steps and an H x W image. */
gboolean diffuse__inpaint_check (const DiffuseSampleParams *params,
                                 gint n_steps, gint height, gint width,
                                 GError **error);
/* RePaint's schedule of levels from start down to −1 (g_free it). */
gint *diffuse__inpaint_levels (gint start, gint jump, gint count,
                               gint *n_levels);

/* ---- model.c ---------------------------------------------------------- */

/* diffuse_model_new_from_file on bytes the caller keeps alive while the
 * model lives (fuzzing, tests); name is used in messages. */
DiffuseModel *diffuse__model_new_from_bytes (const guint8 *bytes, gsize len,
                                             const char *name, GError **error);

/* Look up a tensor and check its shape exactly (ndim entries of shape),
 * as diffuse__safetensors_get_shaped. */
const float *diffuse__model_tensor (const DiffuseModel *model, const char *name,
                                    gint ndim, const gint64 *shape,
                                    GError **error);

/* ---- unet-weights.c ---------------------------------------------------- */

/* The UNet's layer list and parameters bound to the named tensors of st
 * (llm.c style), built once at load time for the checked config cfg:
 * every shape is validated, and a file with tensors the architecture does
 * not use is rejected (name: the file's, for messages).  unet-weights.h
 * has the layout. */
typedef struct _DiffuseUNetWeights DiffuseUNetWeights;

DiffuseUNetWeights *diffuse__unet_weights_new (const DiffuseSafetensors *st,
                                               const DiffuseModelConfig *cfg,
                                               const char *name,
                                               GError **error);
void diffuse__unet_weights_free (DiffuseUNetWeights *weights);
/* diffuse_unet_new's scratch for batch at height × width, in bytes,
 * without allocating it. */
guint64 diffuse__unet_estimate_bytes (const DiffuseModel *model, gint batch,
                                      gint height, gint width);
/* Floating-point operations of one forward pass of one image. */
guint64 diffuse__unet_flops (const DiffuseModel *model, gint height,
                             gint width);
/* Tests: the state's bf16 convolutions use the fp32-emulated path
 * (conv-bf16.h) even where oneDNN is there; precision becomes BF16. */
void diffuse__unet_emulate_bf16 (DiffuseUNet *unet);
/* The same for a classifier state (classifier.c). */
void diffuse__classifier_emulate_bf16 (DiffuseClassifier *clf);

/* model.c: the weights bound at load. */
const DiffuseUNetWeights *
diffuse__model_get_weights (const DiffuseModel *model);

/* ---- classifier.c ------------------------------------------------------ */

/* The classifier's layer list and parameters bound by name, as
 * diffuse__unet_weights_new does for the UNet (a file with tensors the
 * architecture does not use is rejected). */
typedef struct _DiffuseClassifierWeights DiffuseClassifierWeights;

DiffuseClassifierWeights *
diffuse__classifier_weights_new (const DiffuseSafetensors *st,
                                 const DiffuseModelConfig *cfg,
                                 const char *name, GError **error);
void diffuse__classifier_weights_free (DiffuseClassifierWeights *weights);
const DiffuseClassifierWeights *
diffuse__model_get_classifier_weights (const DiffuseModel *model);
/* For bench/: floating-point operations of one forward pass at this batch
 * (convolutions, linear layers, attention products). */
guint64 diffuse__classifier_get_flops (const DiffuseClassifier *clf,
                                       gint batch);
/* The same for one image of height × width, from the model alone (the
 * run estimate) */
guint64 diffuse__classifier_flops (const DiffuseModel *model, gint height,
                                   gint width);
/* The memory diffuse_classifier_new (model, max_batch, height, width,
 * n_threads) allocates for its state, without building it */
guint64 diffuse__classifier_estimate_bytes (const DiffuseModel *model,
                                            gint max_batch, gint height,
                                            gint width, gint n_threads);

/* ---- sampler.c --------------------------------------------------------- */

/* init_noise and init_image ([n] floats each, when set) are finite and
 * within ±1000; a clear GError names the first bad value. */
gboolean diffuse__check_sample_inputs (const DiffuseSampleParams *params,
                                       gsize n, GError **error);

/* ---- rng.c ------------------------------------------------------------- */

/* One Philox4x32-10 block (Random123's philox4x32_10): counter ctr, key key.
 * Exposed for the known-answer tests. */
void diffuse__philox4x32_10 (const guint32 ctr[4], const guint32 key[2],
                             guint32 out[4]);

G_END_DECLS

#endif /* DIFFUSE_PRIVATE_H */
